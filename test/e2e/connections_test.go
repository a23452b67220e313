package e2e

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// One TCP connection per TaskManager pair and direction of data flow: a job with 32 subtasks per operator over four
// TaskManagers of 8 slots (sequence -> hash(key) -> aggregate -> file-sink, exactly-once checkpoints). The hash
// exchange makes every TaskManager read from every other one, so while the job runs, for every ordered pair (A, B)
// of distinct TaskManagers exactly one ESTABLISHED connection goes from a socket of A's process to B's data port
// (counted in /proc/net/tcp by socket inode), none goes from a TaskManager to its own data port, and each
// TaskManager's weir_taskmanager_network_connections gauge says 3 outgoing and 3 incoming. Once the job finished, the
// last channels closed the connections: the gauges read 0. The output holds every (key, seq) exactly once.
func TestNetworkConnectionsPerTaskManagerPair(t *testing.T) {
	const tms, slots, parallelism = 4, 8, 32
	metricsPorts := map[string]string{}
	c := &cluster{t: t, dir: t.TempDir(), perProcess: func(name string) []string {
		if p, ok := metricsPorts[name]; ok {
			return []string{"metrics.reporter.prom.port=" + p}
		}
		return nil
	}}
	for i := 1; i <= tms; i++ {
		metricsPorts[fmt.Sprintf("taskmanager-%d", i)] = strconv.Itoa(freePort(t))
	}
	c.launch(tms, slots)

	out := filepath.Join(c.dir, "out")
	// 64 keys x 3000: 6000 records per source subtask at 500/s, about 12 s of data.
	const keys, count = 64, 3000
	jobID := strings.TrimSpace(c.mustWeir("run", "-d", keyedJob{
		name: "connections", parallelism: parallelism,
		config: c.checkpointing("300ms", "execution.checkpointing.mode: EXACTLY_ONCE"),
		keys:   keys, count: count, rate: 500, out: out,
	}.write(c)))
	c.runningOn(jobID, rand.New(rand.NewPCG(1, 1)))
	// A completed checkpoint's barriers crossed every channel: every channel is connected.
	c.waitCheckpoints(jobID, 2)

	// The TaskManagers, by process, with their data ports.
	type tmInfo struct {
		name     string
		pid      int
		dataPort int
		metrics  string
	}
	var infos []tmInfo
	for _, tm := range c.waitTaskManagers(tms) {
		_, port, err := net.SplitHostPort(tm.DataAddr)
		if err != nil {
			t.Fatalf("data address %q: %v", tm.DataAddr, err)
		}
		dp, _ := strconv.Atoi(port)
		p := c.processOf(tm.ID)
		infos = append(infos, tmInfo{name: p.name, pid: p.cmd.Process.Pid, dataPort: dp, metrics: "127.0.0.1:" + metricsPorts[p.name]})
	}
	if st := c.status(jobID); st.State != "RUNNING" {
		t.Fatalf("job is %s before the connections were counted, want RUNNING: the job is too short", st.State)
	}

	conns := establishedTCP(t)
	byPort := map[int]int{} // data port -> index in infos
	owner := map[uint64]int{}
	for i, tm := range infos {
		byPort[tm.dataPort] = i
		for _, inode := range socketInodes(t, tm.pid) {
			owner[inode] = i
		}
	}
	// perPair[a][b]: connections from a socket of TaskManager a to the data port of TaskManager b.
	perPair := make([][]int, len(infos))
	for i := range perPair {
		perPair[i] = make([]int, len(infos))
	}
	for _, conn := range conns {
		b, toData := byPort[conn.remotePort]
		a, ours := owner[conn.inode]
		if toData && ours {
			perPair[a][b]++
		}
	}
	var matrix strings.Builder
	for a := range infos {
		for b := range infos {
			fmt.Fprintf(&matrix, "%s -> %s (data port %d): %d\n", infos[a].name, infos[b].name, infos[b].dataPort, perPair[a][b])
		}
	}
	t.Logf("established connections to data ports, by TaskManager process:\n%s", matrix.String())
	for a := range infos {
		for b := range infos {
			want := 1
			if a == b {
				want = 0 // local channels take no socket
			}
			if perPair[a][b] != want {
				t.Errorf("%s -> %s: %d established connections to the data port, want %d", infos[a].name, infos[b].name, perPair[a][b], want)
			}
		}
	}
	for _, tm := range infos {
		g := connectionGauges(t, tm.metrics)
		if g["outgoing"] != tms-1 || g["incoming"] != tms-1 {
			t.Errorf("%s: weir_taskmanager_network_connections = %v, want %d outgoing and %d incoming", tm.name, g, tms-1, tms-1)
		}
	}

	st := c.waitState(jobID, 180*time.Second, "FINISHED", "FAILED", "CANCELED")
	if st.State != "FINISHED" {
		t.Fatalf("job ended %s: %s", st.State, st.StatusMessage)
	}
	checkKeyedCounts(t, out, keys, count)
	for _, tm := range infos {
		waitFor(t, 30*time.Second, tm.name+" connections closed after the job", func() bool {
			g := connectionGauges(t, tm.metrics)
			return g["outgoing"] == 0 && g["incoming"] == 0
		})
	}
}

type tcpConn struct {
	remotePort int
	inode      uint64
}

// establishedTCP lists the ESTABLISHED TCP sockets of this network namespace (/proc/net/tcp and tcp6).
func establishedTCP(t *testing.T) []tcpConn {
	t.Helper()
	var out []tcpConn
	for _, path := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		f, err := os.Open(path)
		if err != nil {
			if os.IsNotExist(err) {
				continue
			}
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		sc.Scan() // header
		for sc.Scan() {
			// sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode ...
			fields := strings.Fields(sc.Text())
			if len(fields) < 10 || fields[3] != "01" {
				continue
			}
			rem := fields[2]
			port, err := strconv.ParseUint(rem[strings.LastIndexByte(rem, ':')+1:], 16, 16)
			if err != nil {
				t.Fatalf("%s: remote address %q: %v", path, rem, err)
			}
			inode, err := strconv.ParseUint(fields[9], 10, 64)
			if err != nil {
				t.Fatalf("%s: inode %q: %v", path, fields[9], err)
			}
			out = append(out, tcpConn{remotePort: int(port), inode: inode})
		}
		f.Close()
		if err := sc.Err(); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// socketInodes returns the inodes of the sockets process pid has open.
func socketInodes(t *testing.T, pid int) []uint64 {
	t.Helper()
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []uint64
	for _, e := range entries {
		target, err := os.Readlink(filepath.Join(dir, e.Name()))
		if err != nil || !strings.HasPrefix(target, "socket:[") {
			continue // closed meanwhile, or not a socket
		}
		inode, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimPrefix(target, "socket:["), "]"), 10, 64)
		if err != nil {
			t.Fatalf("%s: %q: %v", dir, target, err)
		}
		out = append(out, inode)
	}
	return out
}

// connectionGauges scrapes weir_taskmanager_network_connections at addr, by direction.
func connectionGauges(t *testing.T, addr string) map[string]int {
	t.Helper()
	hc := &http.Client{Timeout: 5 * time.Second}
	resp, err := hc.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatalf("metrics at %s: %v", addr, err)
	}
	defer resp.Body.Close()
	out := map[string]int{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "weir_taskmanager_network_connections{") {
			continue
		}
		for _, dir := range []string{"outgoing", "incoming"} {
			if strings.Contains(line, `direction="`+dir+`"`) {
				v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
				if err != nil {
					t.Fatalf("metric line %q: %v", line, err)
				}
				out[dir] = int(v)
			}
		}
	}
	if len(out) != 2 {
		t.Fatalf("metrics at %s: weir_taskmanager_network_connections has %v, want both directions", addr, out)
	}
	return out
}
