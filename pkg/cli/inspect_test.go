package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/minio/minio-go/v7"

	"github.com/weirstream/weir/pkg/config"
	"github.com/weirstream/weir/pkg/internal/miniotest"
	"github.com/weirstream/weir/pkg/snapshot"
	"github.com/weirstream/weir/pkg/snapshot/s3"
	"github.com/weirstream/weir/pkg/state"
)

// inspectDriver is one storage the inspect tests run on: where the
// checkpoint goes, the flags weir needs to read it, and how a test damages
// a state object behind weir's back.
type inspectDriver struct {
	root  string   // checkpoint directory, as a user gives it
	flags []string // weir's storage flags
	// get, put and remove act on a state file, given its displayed path.
	get    func(t *testing.T, path string) []byte
	put    func(t *testing.T, path string, b []byte)
	remove func(t *testing.T, path string)
}

func fileDriver(t *testing.T) inspectDriver {
	return inspectDriver{
		root: t.TempDir(),
		get: func(t *testing.T, p string) []byte {
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			return b
		},
		put: func(t *testing.T, p string, b []byte) {
			if err := os.WriteFile(p, b, 0o644); err != nil {
				t.Fatal(err)
			}
		},
		remove: func(t *testing.T, p string) {
			if err := os.Remove(p); err != nil {
				t.Fatal(err)
			}
		},
	}
}

func s3Driver(t *testing.T) inspectDriver {
	srv := miniotest.Start(t)
	// The test writes its checkpoint with the driver weir registers.
	cfg, _, err := config.FromMap(srv.Config())
	if err != nil {
		t.Fatal(err)
	}
	if err := s3.Register(cfg); err != nil {
		t.Fatal(err)
	}
	var flags []string
	for k, v := range srv.Config() {
		flags = append(flags, "-D", k+"="+v)
	}
	key := func(t *testing.T, p string) string {
		k, ok := strings.CutPrefix(p, "s3://"+srv.Bucket+"/")
		if !ok {
			t.Fatalf("state file %s is not in bucket %s", p, srv.Bucket)
		}
		return k
	}
	ctx := context.Background()
	return inspectDriver{
		root:  "s3://" + srv.Bucket + "/cp",
		flags: flags,
		get: func(t *testing.T, p string) []byte {
			o, err := srv.Client().GetObject(ctx, srv.Bucket, key(t, p), minio.GetObjectOptions{})
			if err != nil {
				t.Fatal(err)
			}
			defer o.Close()
			b, err := io.ReadAll(o)
			if err != nil {
				t.Fatal(err)
			}
			return b
		},
		put: func(t *testing.T, p string, b []byte) {
			if _, err := srv.Client().PutObject(ctx, srv.Bucket, key(t, p), bytes.NewReader(b), int64(len(b)), minio.PutObjectOptions{}); err != nil {
				t.Fatal(err)
			}
		},
		remove: func(t *testing.T, p string) {
			if err := srv.Client().RemoveObject(ctx, srv.Bucket, key(t, p), minio.RemoveObjectOptions{}); err != nil {
				t.Fatal(err)
			}
		},
	}
}

// writeTestCheckpoint writes checkpoint 7 of job "job-1" under root: a
// source with small (inline) operator state, and a keyed counter with
// keyed state in files and, on subtask 1, in-flight data of an input
// channel (an unaligned checkpoint). It returns the checkpoint's path
// and the displayed paths of the counter's state files (keyed 0, keyed 1,
// in-flight).
func writeTestCheckpoint(t *testing.T, root string, savepoint bool) (string, []string) {
	t.Helper()
	ctx := context.Background()
	st, err := snapshot.Open(root, nil)
	if err != nil {
		t.Fatal(err)
	}
	var loc snapshot.Location
	if savepoint {
		loc, err = st.SavepointLocation(ctx, root, "job-1")
	} else {
		loc, err = st.CheckpointLocation("job-1", 7)
	}
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, n int) snapshot.StateHandle {
		w, err := loc.CreateStateFile(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(bytes.Repeat([]byte{'x'}, n)); err != nil {
			t.Fatal(err)
		}
		h, err := w.Close()
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	keyed := func(sub, n int) snapshot.StateObject {
		w, err := loc.CreateStateFile(ctx, fmt.Sprintf("count-%d", sub))
		if err != nil {
			t.Fatal(err)
		}
		kw := snapshot.NewKeyGroupWriter(w, state.KeyGroupRange{Start: sub * 64, End: sub*64 + 63})
		if err := kw.StartKeyGroup(sub * 64); err != nil {
			t.Fatal(err)
		}
		if _, err := kw.Write(bytes.Repeat([]byte{byte('a' + sub)}, n)); err != nil {
			t.Fatal(err)
		}
		o, err := kw.Close()
		if err != nil {
			t.Fatal(err)
		}
		return o
	}
	src := snapshot.OperatorState{ID: "src", Type: "sequence", Parallelism: 2, Subtasks: []snapshot.SubtaskState{
		{Subtask: 0, State: []snapshot.StateObject{{Kind: snapshot.KindOperator, StateHandle: write("src-0", 100)}}},
		{Subtask: 1, Finished: true, State: []snapshot.StateObject{{Kind: snapshot.KindOperator, StateHandle: write("src-1", 200)}}},
	}}
	k0, k1, in := keyed(0, 30000), keyed(1, 40000), write("count-1-in", 25000)
	count := snapshot.OperatorState{ID: "count", Type: "keyed-count", Parallelism: 2, Subtasks: []snapshot.SubtaskState{
		{Subtask: 0, State: []snapshot.StateObject{k0}},
		{Subtask: 1, State: []snapshot.StateObject{k1, {
			Kind: snapshot.KindInputChannel, StateHandle: in,
			Channel: &snapshot.ChannelStateInfo{Gate: 0, Channel: 1, Offsets: []int64{0}},
		}}},
	}}
	m := &snapshot.Metadata{JobID: "job-1", JobName: "counts", CheckpointID: 7, TimestampMs: 1,
		Savepoint: savepoint, MaxParallelism: 128, Operators: []snapshot.OperatorState{src, count}}
	if _, err := loc.WriteMetadata(ctx, m); err != nil {
		t.Fatal(err)
	}
	files := []string{loc.Path() + "/" + k0.Path, loc.Path() + "/" + k1.Path, loc.Path() + "/" + in.Path}
	return loc.Path(), files
}

func inspectApp(t *testing.T, d inspectDriver, args ...string) result {
	t.Helper()
	args = append(append([]string{"checkpoint", "inspect"}, d.flags...), args...)
	return weirApp(t, func(a *app) { a.services.Storage = []StorageDrivers{s3.Register} }, "", args...)
}

func TestCheckpointInspect(t *testing.T) {
	for name, newDriver := range map[string]func(*testing.T) inspectDriver{"file": fileDriver, "s3": s3Driver} {
		t.Run(name, func(t *testing.T) {
			d := newDriver(t)
			path, files := writeTestCheckpoint(t, d.root, false)

			inspectApp(t, d, path).check(t, ""+
				"Path:             "+path+"\n"+
				"Job:              job-1 (counts)\n"+
				"ID:               7\n"+
				"Kind:             checkpoint\n"+
				"Unaligned:        yes\n"+
				"Max parallelism:  128\n"+
				"Size:             93.1 KiB (95300 bytes)\n"+
				"In-flight:        24.4 KiB (25000 bytes)\n"+
				"\n"+
				"OPERATOR  TYPE         SUBTASK  PARALLELISM  MAX PARALLELISM  STATE     IN-FLIGHT  FINISHED\n"+
				"count     keyed-count  all      2            128              68.4 KiB  24.4 KiB   -\n"+
				"count     keyed-count  0        2            128              29.3 KiB  0 B        no\n"+
				"count     keyed-count  1        2            128              39.1 KiB  24.4 KiB   no\n"+
				"src       sequence     all      2            128              300 B     0 B        -\n"+
				"src       sequence     0        2            128              100 B     0 B        no\n"+
				"src       sequence     1        2            128              200 B     0 B        yes\n",
				"", 0)

			want := inspectJSON{ID: 7, JobID: "job-1", Kind: "checkpoint", Unaligned: true, SizeBytes: 95300, InFlightBytes: 25000,
				Operators: []inspectOperatorJSON{
					{ID: "count", Type: "keyed-count", Parallelism: 2, MaxParallelism: 128, StateBytes: 70000},
					{ID: "src", Type: "sequence", Parallelism: 2, MaxParallelism: 128, StateBytes: 300},
				},
				Valid: true, Problems: []string{}}
			checkInspectJSON(t, inspectApp(t, d, "--verify", "-o", "json", path+"/_metadata"), want, 0)

			// A corrupt state file (same size, one byte changed), a
			// missing one and a truncated one are all found, and nothing
			// else.
			b := d.get(t, files[0])
			b[len(b)/2] ^= 0xff
			d.put(t, files[0], b)
			d.remove(t, files[1])
			d.put(t, files[2], d.get(t, files[2])[:24000])
			r := inspectApp(t, d, "--verify", "-o", "json", path)
			var got inspectJSON
			if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
				t.Fatalf("stdout is not JSON: %v\n%s", err, r.stdout)
			}
			wantCorrupt := fmt.Sprintf(`operator "count" subtask 0 keyed state 0: checksum mismatch in state file %s: CRC-32C %08x, the metadata says %08x`,
				files[0], crc32.Checksum(b, crc32.MakeTable(crc32.Castagnoli)), crc32.Checksum(bytes.Repeat([]byte{'a'}, 30000), crc32.MakeTable(crc32.Castagnoli)))
			wantMissing := fmt.Sprintf(`operator "count" subtask 1 keyed state 0: state file %s is missing: `, files[1])
			wantTruncated := fmt.Sprintf(`operator "count" subtask 1 input-channel state 1: state file %s has 24000 bytes, the metadata says 25000 (truncated or corrupt)`, files[2])
			if len(got.Problems) != 3 || got.Problems[0] != wantCorrupt || !strings.HasPrefix(got.Problems[1], wantMissing) || got.Problems[2] != wantTruncated {
				t.Errorf("problems:\n%q\nwant:\n%q\n%q...\n%q", got.Problems, wantCorrupt, wantMissing, wantTruncated)
			}
			want.Valid, want.Problems = false, got.Problems
			checkInspectJSON(t, r, want, 1)
			if wantErr := "weir: " + path + " failed verification: 3 problem(s)\n"; r.stderr != wantErr {
				t.Errorf("stderr %q, want %q", r.stderr, wantErr)
			}

			// The table lists the problems after the operators.
			r = inspectApp(t, d, "--verify", path)
			if wantTail := "\nVerified 5 state object(s): 3 problem(s):\n  " + wantCorrupt + "\n  " + wantMissing; !strings.Contains(r.stdout, wantTail) || r.code != 1 {
				t.Errorf("exit %d, stdout:\n%s\nwant it to contain:\n%s", r.code, r.stdout, wantTail)
			}

			// Without --verify the damage is not looked for.
			want.Valid, want.Problems = true, []string{}
			checkInspectJSON(t, inspectApp(t, d, "-o", "json", path), want, 0)
		})
	}
}

func checkInspectJSON(t *testing.T, r result, want inspectJSON, wantCode int) {
	t.Helper()
	var got inspectJSON
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
		t.Fatalf("stdout is not JSON: %v\n%s", err, r.stdout)
	}
	if !reflect.DeepEqual(got, want) || r.code != wantCode {
		t.Errorf("exit %d, JSON:\n%+v\nwant exit %d:\n%+v", r.code, got, wantCode, want)
	}
	// Exactly the documented fields, problems an array even when empty.
	var raw map[string]json.RawMessage
	if err := json.Unmarshal([]byte(r.stdout), &raw); err != nil {
		t.Fatal(err)
	}
	var keys []string
	for k := range raw {
		keys = append(keys, k)
	}
	if len(keys) != 9 || string(raw["problems"])[0] != '[' {
		t.Errorf("JSON keys %v, problems %s", keys, raw["problems"])
	}
}

func TestCheckpointInspectSavepointAndErrors(t *testing.T) {
	d := fileDriver(t)
	path, _ := writeTestCheckpoint(t, d.root, true)
	r := inspectApp(t, d, "-o", "json", path)
	if !strings.Contains(r.stdout, `"kind": "savepoint"`) || r.code != 0 {
		t.Errorf("exit %d, stdout:\n%s", r.code, r.stdout)
	}

	empty := t.TempDir()
	inspectApp(t, d, empty).check(t, "", "weir: not a weir checkpoint or savepoint: "+empty+": no _metadata\n", 1)

	// A damaged _metadata is refused, naming the file.
	meta := filepath.Join(path, "_metadata")
	b, err := os.ReadFile(meta)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(meta, b[:len(b)-3], 0o644); err != nil {
		t.Fatal(err)
	}
	r = inspectApp(t, d, "--verify", path)
	if want := "weir: " + meta + ": truncated _metadata: "; !strings.HasPrefix(r.stderr, want) || r.code != 1 || r.stdout != "" {
		t.Errorf("exit %d, stdout %q, stderr %q, want %q...", r.code, r.stdout, r.stderr, want)
	}

	// Storage flags are checked, naming the key, and never echo a secret.
	inspectApp(t, d, "-D", "s3.secret-key=hunter2", "s3://b/cp").check(t, "",
		"weir: s3: set both s3.access-key and s3.secret-key, or neither (to use AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, ~/.aws/credentials or the instance's IAM role)\n", 1)
	r = inspectApp(t, d, "-D", "nonsense", path)
	if r.code != 1 || !strings.Contains(r.stderr, `invalid -D override "nonsense": want key=value`) {
		t.Errorf("exit %d, stderr %q", r.code, r.stderr)
	}

	// A path with terminal escapes is shown escaped.
	bad := filepath.Join(t.TempDir(), "x\x1b[2J")
	inspectApp(t, d, bad).check(t, "", "weir: not a weir checkpoint or savepoint: "+printable(bad)+": does not exist\n", 1)
}
