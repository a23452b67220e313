package cli

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/weirstream/weir/proto/weirpb"
)

const jobYAML = "name: wordcount\nparallelism: 2\n"

func writeJobFile(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "wordcount.yaml")
	if err := os.WriteFile(path, []byte(jobYAML), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// scriptedJob answers GetJob with the next of its states, then repeats the
// last: a job progressing one step per poll.
type scriptedJob struct {
	mu    sync.Mutex
	steps []*weirpb.JobDetails
	polls int
}

func (s *scriptedJob) get(context.Context, *weirpb.GetJobRequest) (*weirpb.JobDetails, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.steps[min(s.polls, len(s.steps)-1)]
	s.polls++
	return d, nil
}

// rewind makes the next poll answer steps[n].
func (s *scriptedJob) rewind(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.polls = n
}

func submitAs(id string) func(*weirpb.SubmitJobRequest) (*weirpb.SubmitJobResponse, error) {
	return func(*weirpb.SubmitJobRequest) (*weirpb.SubmitJobResponse, error) {
		return &weirpb.SubmitJobResponse{JobId: id}, nil
	}
}

// tickingClock advances by step each time weir reads it, so every poll of
// `weir run` is a step later than the one before.
func tickingClock(step time.Duration) func() time.Time {
	now := testNow
	return func() time.Time {
		now = now.Add(step)
		return now
	}
}

func job(state string, tasks ...*weirpb.TaskStatus) *weirpb.JobDetails {
	d := &weirpb.JobDetails{Id: "7f3c2a1e", Name: "wordcount", State: state, Parallelism: 1, Tasks: tasks}
	if state != "CREATED" {
		d.StartTimeUnixMs = ms(testNow.Add(-time.Minute))
	}
	return d
}

func task(op, state string, out int64) *weirpb.TaskStatus {
	return &weirpb.TaskStatus{Operator: op, State: state, Taskmanager: "tm-1", RecordsIn: out, RecordsOut: out}
}

func TestRunDetached(t *testing.T) {
	f := &fakeJobService{submit: submitAs("7f3c2a1e")}
	addr := serve(t, f)
	path := writeJobFile(t)
	weir(t, addr, "run", "-d", path).check(t, "7f3c2a1e\n", "", 0)
	weir(t, addr, "run", "--detached", "--from-savepoint", "file:///sp/savepoint-1", "--allow-non-restored-state", path).
		check(t, "7f3c2a1e\n", "", 0)
	weir(t, addr, "run", "-d", "-s", "file:///sp/savepoint-1", "-n", path).check(t, "7f3c2a1e\n", "", 0)
	plain := &weirpb.SubmitJobRequest{JobSpec: []byte(jobYAML), FileName: path}
	restore := &weirpb.SubmitJobRequest{JobSpec: []byte(jobYAML), FileName: path,
		FromSavepoint: "file:///sp/savepoint-1", AllowNonRestoredState: true}
	checkRequests(t, f, []proto.Message{plain, restore, restore})
}

func TestRunRejectedJob(t *testing.T) {
	addr := serve(t, &fakeJobService{submit: func(r *weirpb.SubmitJobRequest) (*weirpb.SubmitJobResponse, error) {
		return nil, status.Errorf(codes.InvalidArgument, "%s: operator %q: unknown type %q", r.GetFileName(), "upper", "uppercase")
	}})
	path := writeJobFile(t)
	weir(t, addr, "run", path).check(t, "",
		`weir: `+path+`: operator "upper": unknown type "uppercase"`+"\n", 1)
}

func TestRunMissingFile(t *testing.T) {
	addr := closedAddr(t) // the file is read before any call
	missing := filepath.Join(t.TempDir(), "nope.yaml")
	weir(t, addr, "run", missing).check(t, "",
		"weir: cannot read job file "+missing+": no such file or directory\n", 1)
	dir := t.TempDir()
	weir(t, addr, "run", "-d", dir).check(t, "",
		"weir: job file "+dir+" is a directory: want a regular file\n", 1)
}

func TestRunFollowsJobToFinished(t *testing.T) {
	finished := job("FINISHED", task("source -> split", "FINISHED", 500), task("count -> sink", "FINISHED", 120))
	finished.EndTimeUnixMs = ms(testNow.Add(-time.Minute + 83*time.Second))
	s := &scriptedJob{steps: []*weirpb.JobDetails{
		{Id: "7f3c2a1e", Name: "wordcount", State: "CREATED", Parallelism: 1, StatusMessage: "waiting for slots: 2 needed, 0 free"},
		{Id: "7f3c2a1e", Name: "wordcount", State: "CREATED", Parallelism: 1, StatusMessage: "waiting for slots: 2 needed, 0 free"},
		job("RUNNING", task("source -> split", "RUNNING", 0), task("count -> sink", "DEPLOYING", 0)),
		job("RUNNING", task("source -> split", "RUNNING", 0), task("count -> sink", "RUNNING", 0)),
		job("RUNNING", task("source -> split", "RUNNING", 500), task("count -> sink", "RUNNING", 120)),
		finished,
	}}
	addr := serve(t, &fakeJobService{submit: submitAs("7f3c2a1e"), get: s.get})
	path := writeJobFile(t)
	r := weirApp(t, func(a *app) { a.now = tickingClock(time.Second) }, addr, "run", path)
	r.check(t, ""+
		"Job:          7f3c2a1e\n"+
		"Name:         wordcount\n"+
		"State:        FINISHED\n"+
		"Parallelism:  1\n"+
		"Started:      2025-03-01 11:59:00\n"+
		"Duration:     1m23s\n"+
		"\n"+
		"OPERATOR         SUBTASK  STATE     TASKMANAGER  RECORDS IN  RECORDS OUT\n"+
		"source -> split  0        FINISHED  tm-1         500         500\n"+
		"count -> sink    0        FINISHED  tm-1         120         120\n",
		"Job 7f3c2a1e submitted\n"+
			"CREATED (waiting for slots: 2 needed, 0 free)\n"+
			"RUNNING: 1/2 tasks running, 0 records into count -> sink\n"+
			"RUNNING: 2/2 tasks running, 0 records into count -> sink\n"+
			"RUNNING: 2/2 tasks running, 120 records into count -> sink\n", 0)

	// -o json gives the final status as `weir status -o json` does.
	s.rewind(0)
	r = weirApp(t, func(a *app) { a.now = tickingClock(time.Second) }, addr, "run", "-o", "json", path)
	if r.code != 0 || !strings.HasPrefix(r.stdout, "{\n  \"id\": \"7f3c2a1e\",\n  \"name\": \"wordcount\",\n  \"state\": \"FINISHED\",\n") {
		t.Errorf("run -o json: exit %d, stdout:\n%s", r.code, r.stdout)
	}
}

func TestRunJobFails(t *testing.T) {
	failed := job("FAILED", &weirpb.TaskStatus{Operator: "source -> upper", State: "FAILED", Taskmanager: "tm-1",
		RecordsOut: 3, Attempt: 2, Failure: "parse record: unexpected EOF"})
	failed.EndTimeUnixMs = ms(testNow)
	failed.Restarts = 2
	failed.StatusMessage = "restart strategy exhausted: parse record: unexpected EOF"
	s := &scriptedJob{steps: []*weirpb.JobDetails{job("RUNNING", task("source -> upper", "RUNNING", 0)), failed}}
	addr := serve(t, &fakeJobService{submit: submitAs("7f3c2a1e"), get: s.get})
	path := writeJobFile(t)
	weir(t, addr, "run", path).check(t, ""+
		"Job:          7f3c2a1e\n"+
		"Name:         wordcount\n"+
		"State:        FAILED\n"+
		"Parallelism:  1\n"+
		"Started:      2025-03-01 11:59:00\n"+
		"Duration:     1m0s\n"+
		"Restarts:     2\n"+
		"Message:      restart strategy exhausted: parse record: unexpected EOF\n"+
		"\n"+
		"OPERATOR         SUBTASK  STATE   TASKMANAGER  RECORDS IN  RECORDS OUT\n"+
		"source -> upper  0        FAILED  tm-1         0           3\n"+
		"\n"+
		"Task failures:\n"+
		"  source -> upper (subtask 0, attempt 2): parse record: unexpected EOF\n",
		"Job 7f3c2a1e submitted\n"+
			"RUNNING: 1/1 tasks running, 0 records into source -> upper\n"+
			"weir: job 7f3c2a1e FAILED: restart strategy exhausted: parse record: unexpected EOF\n", 1)

	// The task's failure appears in the JSON form only when set.
	s.rewind(1)
	r := weir(t, addr, "status", "-o", "json", "7f3c2a1e")
	want := `      "attempt": 2,
      "failure": "parse record: unexpected EOF"
    }`
	if r.code != 0 || !strings.Contains(r.stdout, want) {
		t.Errorf("status -o json: exit %d, stdout:\n%s\nwant it to contain:\n%s", r.code, r.stdout, want)
	}
}

func TestRunJobCanceled(t *testing.T) {
	canceled := job("CANCELED", task("source", "CANCELED", 7))
	canceled.EndTimeUnixMs = ms(testNow)
	s := &scriptedJob{steps: []*weirpb.JobDetails{canceled}}
	addr := serve(t, &fakeJobService{submit: submitAs("7f3c2a1e"), get: s.get})
	r := weir(t, addr, "run", writeJobFile(t))
	if r.code != 1 || r.stderr != "Job 7f3c2a1e submitted\nweir: job 7f3c2a1e CANCELED\n" ||
		!strings.Contains(r.stdout, "State:        CANCELED\n") {
		t.Errorf("exit %d, stdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
}

// Ctrl-C stops following the job and says how to cancel it; it does not
// cancel it.
func TestRunInterrupted(t *testing.T) {
	f := &fakeJobService{
		submit: submitAs("7f3c2a1e"),
		get: func(context.Context, *weirpb.GetJobRequest) (*weirpb.JobDetails, error) {
			return job("RUNNING", task("source -> sink", "RUNNING", 10)), nil
		},
	}
	addr := serve(t, f)
	path := writeJobFile(t)

	ctx, interrupt := context.WithCancel(context.Background())
	defer interrupt()
	var stdout, stderr syncBuffer
	a := testApp(&stdout, &stderr, nil)
	code := make(chan int, 1)
	go func() { code <- a.run(ctx, []string{"--jobmanager", addr, "run", path}) }()
	// Interrupt once weir is following the job (it has printed its state).
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(stderr.String(), "RUNNING"); {
		if time.Now().After(deadline) {
			t.Fatalf("weir run never reported the job running; stderr:\n%s", stderr.String())
		}
		time.Sleep(time.Millisecond)
	}
	interrupt()
	var got int
	select {
	case got = <-code:
	case <-time.After(10 * time.Second):
		t.Fatal("weir run did not return after the interrupt")
	}
	result{stdout: stdout.String(), stderr: stderr.String(), code: got}.check(t, "",
		"Job 7f3c2a1e submitted\n"+
			"RUNNING: 1/1 tasks running, 10 records into source -> sink\n"+
			"\n"+
			"Stopped following job 7f3c2a1e; it keeps running.\n"+
			"Cancel it with: weir --jobmanager "+addr+" cancel 7f3c2a1e\n", 130)
	for _, req := range f.received() {
		if _, ok := req.(*weirpb.CancelJobRequest); ok {
			t.Error("weir run cancelled the job on interrupt")
		}
	}
}

func TestProgress(t *testing.T) {
	running := func(out int64) *weirpb.JobDetails {
		return job("RUNNING", task("source", "RUNNING", 1000), task("sink", "RUNNING", out))
	}
	ms := time.Millisecond
	steps := []struct {
		at   time.Duration
		job  *weirpb.JobDetails
		want string // "" for no line
	}{
		{0, &weirpb.JobDetails{State: "CREATED"}, "CREATED"},
		{100 * ms, &weirpb.JobDetails{State: "CREATED"}, ""},                                           // unchanged
		{200 * ms, running(0), ""},                                                                     // changed, but too soon
		{1000 * ms, running(5), "RUNNING: 2/2 tasks running, 5 records into sink"},                     // the latest, a second later
		{1500 * ms, running(7), ""},                                                                    // too soon
		{2500 * ms, running(7), "RUNNING: 2/2 tasks running, 7 records into sink"},                     // held back, now due
		{9000 * ms, running(7), ""},                                                                    // unchanged
		{9001 * ms, job("RESTARTING", task("source", "CANCELED", 0)), "RESTARTING: 0/1 tasks running"}, // no sink output yet
		{9002 * ms, &weirpb.JobDetails{State: "RUNNING", Restarts: 1, StatusMessage: "m"}, ""},         // too soon
		{10001 * ms, &weirpb.JobDetails{State: "RUNNING", Restarts: 1, StatusMessage: "m"}, "RUNNING, 1 restarts (m)"},
	}
	var p progress
	for i, s := range steps {
		line, ok := p.next(testNow.Add(s.at), s.job)
		if ok != (s.want != "") || line != s.want {
			t.Errorf("step %d: got (%q, %v), want %q", i, line, ok, s.want)
		}
	}
}

// What reached the last chain (the sink's) is summed over its subtasks;
// a sink emits nothing, so its records out would always be 0.
func TestLastChainRecordsIn(t *testing.T) {
	tasks := []*weirpb.TaskStatus{
		{Operator: "source -> map", Subtask: 0, RecordsIn: 0, RecordsOut: 100},
		{Operator: "source -> map", Subtask: 1, RecordsIn: 0, RecordsOut: 100},
		{Operator: "map2 -> sink", Subtask: 0, RecordsIn: 3},
		{Operator: "map2 -> sink", Subtask: 1, RecordsIn: 4},
	}
	if chain, got := lastChainRecordsIn(tasks); chain != "map2 -> sink" || got != 7 {
		t.Errorf("lastChainRecordsIn = %q, %d, want \"map2 -> sink\", 7", chain, got)
	}
}
