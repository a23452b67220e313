package e2e

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// BenchmarkJobManagerFailover measures a JobManager failover on the HA
// harness (etcd, three JobManagers under a supervisor, three TaskManagers,
// lease TTL 3 s): from the SIGKILL of the leader to the first checkpoint
// completed after it, in three phases:
//
//   - detection: until etcd expires the dead leader's lease and deletes its
//     election key (seen by a watch on the election);
//   - election: until a standby leads and serves (its "leading" log line);
//   - recovery: until the first checkpoint after the failover is completed
//     (its pointer written to etcd, seen by a watch): the TaskManagers
//     register with the new leader and report their tasks, the leader
//     decides to adopt or restart the job (reported apart, as decide), and
//     triggers a checkpoint.
//
// The job is the HA tests' keyed job, unbounded, 16 keys at 10,000 records/s
// per source subtask, checkpointed every 300 ms. Each iteration kills the
// leader once (the killed JobManager is restarted as a standby); run it with
// -benchtime Nx for N failovers on one cluster.
func BenchmarkJobManagerFailover(b *testing.B) {
	h := newHACluster(b, haOptions{})
	out := filepath.Join(h.dir, "out")
	jobID := strings.TrimSpace(h.mustWeir("run", "-d", haJob(h, "failover-bench", 0, 10000, out)))
	h.waitAllRunning(jobID, 60*time.Second)
	h.waitCheckpoints(jobID, 3)

	ev := watchHA(b, h, jobID)
	var detect, elect, decide, recov, total []time.Duration
	l := h.leader()
	for i := 0; i < b.N; i++ {
		h.waitCheckpoints(jobID, 2) // steady state before each kill
		lastCp := h.latestCompleted(jobID)
		old := l
		ev.drain()
		killed := time.Now()
		h.unit(old.addr).kill()
		deleted := ev.waitDeleted(b, old.epoch)
		l = h.waitLeaderBy(killed.Add(h.leaseTTL+2*time.Second), old.epoch)
		serving := h.unit(l.addr).logTime(b, "leading: recovering the jobs of the HA store")
		cp, cpAt := ev.waitCheckpoint(b, lastCp)
		decision := "adopted"
		decided := h.unit(l.addr).logTime(b, "its tasks are adopted", "recovery: the job restarts")
		if !h.unit(l.addr).logHas("its tasks are adopted") {
			decision = "restarted"
		}
		d, e, r := deleted.Sub(killed), serving.Sub(deleted), cpAt.Sub(serving)
		detect, elect, recov, total = append(detect, d), append(elect, e), append(recov, r), append(total, cpAt.Sub(killed))
		decide = append(decide, decided.Sub(serving))
		fmt.Printf("failover %d: detection %v, election %v, recovery %v (job %s %v after the leader served; checkpoint %d after %d), kill to checkpoint %v\n",
			i+1, d.Round(time.Millisecond), e.Round(time.Millisecond), r.Round(time.Millisecond), decision,
			decided.Sub(serving).Round(time.Millisecond), cp, lastCp, cpAt.Sub(killed).Round(time.Millisecond))
		h.waitAllRunning(jobID, 60*time.Second)
	}
	b.StopTimer()
	h.mustWeir("cancel", jobID)
	for _, m := range []struct {
		name string
		ds   []time.Duration
	}{{"detect", detect}, {"elect", elect}, {"decide", decide}, {"recover", recov}, {"kill-to-checkpoint", total}} {
		b.ReportMetric(float64(median(m.ds))/float64(time.Millisecond), m.name+"-ms")
	}
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

// haEvents is what a watch of the HA store saw, with the time it saw it.
type haEvents struct {
	ch chan haEvent
}

type haEvent struct {
	at         time.Time
	deletedRev int64 // an election key deleted: its create revision (the epoch)
	checkpoint int64 // a completed checkpoint's pointer written: its id
}

// watchHA watches the election and the job's completed checkpoints in etcd
// until the benchmark ends.
func watchHA(b *testing.B, h *haCluster, jobID string) *haEvents {
	cli := h.etcdClient()
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	prefix := "/weir/" + haClusterID + "/"
	cpPrefix := prefix + "jobs/" + jobID + "/checkpoints/"
	ev := &haEvents{ch: make(chan haEvent, 1024)}
	// The previous key-value of a delete carries its create revision.
	leaders := cli.Watch(ctx, prefix+"leader/", clientv3.WithPrefix(), clientv3.WithPrevKV())
	cps := cli.Watch(ctx, cpPrefix, clientv3.WithPrefix())
	done := make(chan struct{})
	b.Cleanup(func() { cancel(); <-done })
	go func() {
		defer close(done)
		for leaders != nil || cps != nil {
			var wr clientv3.WatchResponse
			var ok bool
			select {
			case wr, ok = <-leaders:
				if !ok {
					leaders = nil
				}
			case wr, ok = <-cps:
				if !ok {
					cps = nil
				}
			}
			now := time.Now()
			for _, e := range wr.Events {
				var he haEvent
				switch {
				case e.Type == clientv3.EventTypeDelete && e.PrevKv != nil:
					he = haEvent{at: now, deletedRev: e.PrevKv.CreateRevision}
				case e.Type == clientv3.EventTypePut && strings.HasPrefix(string(e.Kv.Key), cpPrefix) && e.IsCreate():
					id, err := strconv.ParseInt(strings.TrimPrefix(string(e.Kv.Key), cpPrefix), 10, 64)
					if err != nil {
						continue
					}
					he = haEvent{at: now, checkpoint: id}
				default:
					continue
				}
				select {
				case ev.ch <- he:
				default: // the benchmark drains between failovers
				}
			}
		}
	}()
	return ev
}

// drain drops what was seen before a failover.
func (ev *haEvents) drain() {
	for {
		select {
		case <-ev.ch:
		default:
			return
		}
	}
}

func (ev *haEvents) waitDeleted(b *testing.B, epoch int64) time.Time {
	b.Helper()
	timeout := time.After(60 * time.Second)
	for {
		select {
		case e := <-ev.ch:
			if e.deletedRev == epoch {
				return e.at
			}
		case <-timeout:
			b.Fatalf("the election key of epoch %d was not deleted within 60 s", epoch)
		}
	}
}

func (ev *haEvents) waitCheckpoint(b *testing.B, after int64) (int64, time.Time) {
	b.Helper()
	timeout := time.After(60 * time.Second)
	for {
		select {
		case e := <-ev.ch:
			if e.checkpoint > after {
				return e.checkpoint, e.at
			}
		case <-timeout:
			b.Fatalf("no checkpoint above %d completed within 60 s", after)
		}
	}
}

// logTime returns the time of the first line of the unit's latest run that
// holds one of msgs (console log format: the time, then a tab), waiting up
// to 30 s.
func (u *jobManagerUnit) logTime(t testing.TB, msgs ...string) time.Time {
	t.Helper()
	var at time.Time
	waitFor(t, 30*time.Second, fmt.Sprintf("%s logs one of %q", u.name, msgs), func() bool {
		data, _ := os.ReadFile(filepath.Join(u.h.dir, u.name+".log"))
		if i := bytes.LastIndex(data, []byte("==== "+u.name+" started at ")); i >= 0 {
			data = data[i:]
		}
		s := bufio.NewScanner(bytes.NewReader(data))
		s.Buffer(make([]byte, 1<<20), 1<<20)
		for s.Scan() {
			line := s.Text()
			if !slices.ContainsFunc(msgs, func(m string) bool { return strings.Contains(line, m) }) {
				continue
			}
			ts, _, _ := strings.Cut(line, "\t")
			var err error
			if at, err = time.Parse("2006-01-02T15:04:05.000Z0700", ts); err != nil {
				t.Fatalf("%s log: time of %q: %v", u.name, line, err)
			}
			return true
		}
		return false
	})
	return at
}
