package cli

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/weirstream/weir/proto/weirpb"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func runningJob() *weirpb.JobDetails {
	return &weirpb.JobDetails{
		Id:              "7f3c2a1e",
		Name:            "wordcount",
		State:           "RUNNING",
		Parallelism:     2,
		MaxParallelism:  128,
		StartTimeUnixMs: ms(testNow.Add(-83 * time.Second)),
		Tasks: []*weirpb.TaskStatus{
			{Operator: "source -> split", Subtask: 0, State: "RUNNING", Taskmanager: "tm-1", RecordsOut: 1500},
			{Operator: "count -> sink", Subtask: 0, State: "RUNNING", Taskmanager: "tm-2", RecordsIn: 1450, RecordsOut: 700, Attempt: 1},
		},
		Restarts: 1,
		Exceptions: []*weirpb.JobException{
			{TimeUnixMs: ms(testNow.Add(-60 * time.Second)), Task: "count -> sink (1/2)", Message: "connection reset by peer"},
		},
		Checkpoints: &weirpb.CheckpointStats{
			Completed: 12, Failed: 1, InProgress: 1,
			Latest: &weirpb.CheckpointInfo{Id: 12, Path: "file:///tmp/cp/7f3c2a1e/chk-12", DurationMs: 340, SizeBytes: 1258291},
		},
	}
}

func TestList(t *testing.T) {
	f := &fakeJobService{list: func() (*weirpb.ListJobsResponse, error) {
		return &weirpb.ListJobsResponse{Jobs: []*weirpb.JobSummary{
			{Id: "7f3c2a1e", Name: "wordcount", State: "RUNNING", StartTimeUnixMs: ms(testNow.Add(-83 * time.Second))},
			{Id: "0b1d", Name: "etl", State: "FINISHED",
				StartTimeUnixMs: ms(testNow.Add(-3 * time.Hour)), EndTimeUnixMs: ms(testNow.Add(-3*time.Hour + 4500*time.Millisecond))},
			{Id: "c4", Name: "", State: "CREATED"},
			{Id: "9e", Name: "ratios", State: "RESTARTING", StartTimeUnixMs: ms(testNow.Add(-10 * time.Second))},
		}}, nil
	}}
	addr := serve(t, f)

	const (
		header     = "ID        NAME       STATE       START TIME           DURATION\n"
		wordcount  = "7f3c2a1e  wordcount  RUNNING     2025-03-01 11:58:37  1m23s\n"
		etl        = "0b1d      etl        FINISHED    2025-03-01 09:00:00  4s\n"
		created    = "c4        -          CREATED     -                    -\n"
		restarting = "9e        ratios     RESTARTING  2025-03-01 11:59:50  10s\n"
	)
	// As flink list: running and scheduled by default; -r, -s, -a.
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"list"}, header + wordcount + created + restarting},
		{[]string{"list", "-r", "-s"}, header + wordcount + created + restarting},
		{[]string{"list", "-a"}, header + wordcount + etl + created + restarting},
		{[]string{"list", "--all", "-r"}, header + wordcount + etl + created + restarting},
		{[]string{"ls", "-r"}, "ID        NAME       STATE       START TIME           DURATION\n" + wordcount + restarting},
		{[]string{"list", "--running"}, "ID        NAME       STATE       START TIME           DURATION\n" + wordcount + restarting},
		{[]string{"list", "-s"}, "ID  NAME  STATE    START TIME  DURATION\nc4  -     CREATED  -           -\n"},
		{[]string{"list", "--scheduled"}, "ID  NAME  STATE    START TIME  DURATION\nc4  -     CREATED  -           -\n"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			weir(t, addr, tc.args...).check(t, tc.want, "", 0)
		})
	}

	weir(t, addr, "list", "-a", "-o", "json").check(t, `[
  {
    "id": "7f3c2a1e",
    "name": "wordcount",
    "state": "RUNNING",
    "start_time": "2025-03-01T11:58:37.000Z"
  },
  {
    "id": "0b1d",
    "name": "etl",
    "state": "FINISHED",
    "start_time": "2025-03-01T09:00:00.000Z",
    "end_time": "2025-03-01T09:00:04.500Z"
  },
  {
    "id": "c4",
    "name": "",
    "state": "CREATED"
  },
  {
    "id": "9e",
    "name": "ratios",
    "state": "RESTARTING",
    "start_time": "2025-03-01T11:59:50.000Z"
  }
]
`, "", 0)
	weir(t, addr, "list", "-s", "-o", "json").check(t, `[
  {
    "id": "c4",
    "name": "",
    "state": "CREATED"
  }
]
`, "", 0)
}

func TestListEmpty(t *testing.T) {
	addr := serve(t, &fakeJobService{list: func() (*weirpb.ListJobsResponse, error) {
		return &weirpb.ListJobsResponse{Jobs: []*weirpb.JobSummary{{Id: "0b1d", Name: "etl", State: "FINISHED"}}}, nil
	}})
	weir(t, addr, "list").check(t, "", "No running or scheduled jobs.\n", 0)
	weir(t, addr, "list", "-r").check(t, "", "No running jobs.\n", 0)
	weir(t, addr, "list", "-s").check(t, "", "No scheduled jobs.\n", 0)
	weir(t, addr, "list", "--output=json").check(t, "[]\n", "", 0)
	empty := serve(t, &fakeJobService{list: func() (*weirpb.ListJobsResponse, error) {
		return &weirpb.ListJobsResponse{}, nil
	}})
	weir(t, empty, "list", "-a").check(t, "", "No jobs.\n", 0)
	weir(t, empty, "list", "-a", "-o", "json").check(t, "[]\n", "", 0)
}

func TestStatus(t *testing.T) {
	f := &fakeJobService{get: func(_ context.Context, r *weirpb.GetJobRequest) (*weirpb.JobDetails, error) {
		if r.GetJobId() != "7f3c2a1e" {
			return nil, status.Errorf(codes.NotFound, "job %q not found", r.GetJobId())
		}
		return runningJob(), nil
	}}
	addr := serve(t, f)

	weir(t, addr, "status", "7f3c2a1e").check(t, ""+
		"Job:          7f3c2a1e\n"+
		"Name:         wordcount\n"+
		"State:        RUNNING\n"+
		"Parallelism:  2 (max 128)\n"+
		"Started:      2025-03-01 11:58:37\n"+
		"Duration:     1m23s\n"+
		"Restarts:     1\n"+
		"Checkpoints:  12 completed, 1 failed, 1 in progress; latest 12 (1.2 MiB, 340ms) file:///tmp/cp/7f3c2a1e/chk-12\n"+
		"\n"+
		"OPERATOR         SUBTASK  STATE    TASKMANAGER  RECORDS IN  RECORDS OUT\n"+
		"source -> split  0        RUNNING  tm-1         0           1500\n"+
		"count -> sink    0        RUNNING  tm-2         1450        700\n"+
		"\n"+
		"Exceptions:\n"+
		"  2025-03-01 11:59:00  count -> sink (1/2): connection reset by peer\n", "", 0)

	weir(t, addr, "status", "-o", "json", "7f3c2a1e").check(t, `{
  "id": "7f3c2a1e",
  "name": "wordcount",
  "state": "RUNNING",
  "parallelism": 2,
  "max_parallelism": 128,
  "start_time": "2025-03-01T11:58:37.000Z",
  "status_message": "",
  "tasks": [
    {
      "operator": "source -> split",
      "subtask": 0,
      "state": "RUNNING",
      "taskmanager": "tm-1",
      "records_in": 0,
      "records_out": 1500,
      "attempt": 0
    },
    {
      "operator": "count -> sink",
      "subtask": 0,
      "state": "RUNNING",
      "taskmanager": "tm-2",
      "records_in": 1450,
      "records_out": 700,
      "attempt": 1
    }
  ],
  "restarts": 1,
  "exceptions": [
    {
      "time": "2025-03-01T11:59:00.000Z",
      "task": "count -> sink (1/2)",
      "message": "connection reset by peer"
    }
  ],
  "checkpoints": {
    "completed": 12,
    "failed": 1,
    "in_progress": 1,
    "latest": {
      "id": 12,
      "path": "file:///tmp/cp/7f3c2a1e/chk-12",
      "duration_ms": 340,
      "size_bytes": 1258291
    }
  }
}
`, "", 0)

	// The server's message, without gRPC's "rpc error: code = ..." prefix.
	weir(t, addr, "status", "nope").check(t, "", "weir: job \"nope\" not found\n", 1)
}

// A job waiting for slots: no start time, no tasks, no checkpoints yet.
func TestStatusNotStarted(t *testing.T) {
	addr := serve(t, &fakeJobService{get: func(context.Context, *weirpb.GetJobRequest) (*weirpb.JobDetails, error) {
		return &weirpb.JobDetails{Id: "c4", Name: "etl", State: "CREATED", Parallelism: 4,
			StatusMessage: "waiting for slots: 4 needed, 2 free"}, nil
	}})
	weir(t, addr, "status", "c4").check(t, ""+
		"Job:          c4\n"+
		"Name:         etl\n"+
		"State:        CREATED\n"+
		"Parallelism:  4\n"+
		"Started:      -\n"+
		"Duration:     -\n"+
		"Message:      waiting for slots: 4 needed, 2 free\n", "", 0)
	weir(t, addr, "status", "c4", "-o", "json").check(t, `{
  "id": "c4",
  "name": "etl",
  "state": "CREATED",
  "parallelism": 4,
  "max_parallelism": 0,
  "status_message": "waiting for slots: 4 needed, 2 free",
  "tasks": [],
  "restarts": 0,
  "exceptions": [],
  "checkpoints": {
    "completed": 0,
    "failed": 0,
    "in_progress": 0
  }
}
`, "", 0)
}

func TestCancel(t *testing.T) {
	var state atomic.Value
	state.Store("CANCELING")
	f := &fakeJobService{
		cancel: func(r *weirpb.CancelJobRequest) (*weirpb.CancelJobResponse, error) {
			if r.GetJobId() != "7f3c2a1e" {
				return nil, status.Errorf(codes.NotFound, "job %q not found", r.GetJobId())
			}
			return &weirpb.CancelJobResponse{}, nil
		},
		get: func(_ context.Context, r *weirpb.GetJobRequest) (*weirpb.JobDetails, error) {
			return &weirpb.JobDetails{Id: r.GetJobId(), State: state.Load().(string)}, nil
		},
	}
	addr := serve(t, f)
	weir(t, addr, "cancel", "7f3c2a1e").check(t, "Cancelling job 7f3c2a1e\n", "", 0)
	state.Store("CANCELED")
	weir(t, addr, "cancel", "7f3c2a1e").check(t, "Cancelled job 7f3c2a1e\n", "", 0)
	weir(t, addr, "cancel", "nope").check(t, "", "weir: job \"nope\" not found\n", 1)
	if got := f.received()[0]; !proto.Equal(got.(proto.Message), &weirpb.CancelJobRequest{JobId: "7f3c2a1e"}) {
		t.Errorf("first request %v", got)
	}
}

func TestTaskManagers(t *testing.T) {
	addr := serve(t, &fakeJobService{taskManagers: func() (*weirpb.ListTaskManagersResponse, error) {
		return &weirpb.ListTaskManagersResponse{Taskmanagers: []*weirpb.TaskManagerInfo{
			{Id: "tm-1", Address: "10.0.0.5:6124", DataAddress: "10.0.0.5:6125", SlotsTotal: 4, SlotsFree: 1,
				RegisteredUnixMs: ms(testNow.Add(-time.Hour)), LastHeartbeatUnixMs: ms(testNow.Add(-3 * time.Second))},
			{Id: "tm-2", Address: "10.0.0.6:6124", SlotsTotal: 2, SlotsFree: 2},
		}}, nil
	}})
	weir(t, addr, "taskmanagers").check(t, ""+
		"ID    ADDRESS        DATA ADDRESS   SLOTS  LAST HEARTBEAT\n"+
		"tm-1  10.0.0.5:6124  10.0.0.5:6125  1/4    3s ago\n"+
		"tm-2  10.0.0.6:6124  -              2/2    -\n", "", 0)
	weir(t, addr, "taskmanagers", "-o", "json").check(t, `[
  {
    "id": "tm-1",
    "address": "10.0.0.5:6124",
    "data_address": "10.0.0.5:6125",
    "slots_total": 4,
    "slots_free": 1,
    "last_heartbeat": "2025-03-01T11:59:57.000Z"
  },
  {
    "id": "tm-2",
    "address": "10.0.0.6:6124",
    "data_address": "",
    "slots_total": 2,
    "slots_free": 2
  }
]
`, "", 0)

	empty := serve(t, &fakeJobService{taskManagers: func() (*weirpb.ListTaskManagersResponse, error) {
		return &weirpb.ListTaskManagersResponse{}, nil
	}})
	weir(t, empty, "taskmanagers").check(t, "", "No TaskManagers registered.\n", 0)
	weir(t, empty, "taskmanagers", "-o", "json").check(t, "[]\n", "", 0)
}

func TestCheckpoints(t *testing.T) {
	addr := serve(t, &fakeJobService{checkpoints: func(r *weirpb.ListCheckpointsRequest) (*weirpb.ListCheckpointsResponse, error) {
		return &weirpb.ListCheckpointsResponse{Checkpoints: []*weirpb.CheckpointInfo{
			{Id: 13, Status: "IN_PROGRESS", TriggerTimeUnixMs: ms(testNow.Add(-time.Second)), Savepoint: true},
			{Id: 12, Status: "COMPLETED", TriggerTimeUnixMs: ms(testNow.Add(-11 * time.Second)), DurationMs: 340,
				Unaligned: true, PersistedInFlightBytes: 2048,
				SizeBytes: 1258291, AlignmentMs: 12, Path: "file:///tmp/cp/7f3c2a1e/chk-12"},
			{Id: 11, Status: "FAILED", TriggerTimeUnixMs: ms(testNow.Add(-21 * time.Second)), DurationMs: 10000,
				Failure: "checkpoint expired before completing"},
		}}, nil
	}})
	weir(t, addr, "checkpoints", "7f3c2a1e").check(t, ""+
		"ID  TYPE        STATUS       TRIGGER TIME         DURATION  SIZE     IN-FLIGHT  ALIGNMENT  PATH OR FAILURE\n"+
		"13  savepoint   IN_PROGRESS  2025-03-01 11:59:59  0ms       0 B      0 B        0ms        -\n"+
		"12  unaligned   COMPLETED    2025-03-01 11:59:49  340ms     1.2 MiB  2.0 KiB    12ms       file:///tmp/cp/7f3c2a1e/chk-12\n"+
		"11  checkpoint  FAILED       2025-03-01 11:59:39  10s       0 B      0 B        0ms        checkpoint expired before completing\n", "", 0)
	weir(t, addr, "checkpoints", "7f3c2a1e", "-o", "json").check(t, `[
  {
    "id": 13,
    "savepoint": true,
    "status": "IN_PROGRESS",
    "trigger_time": "2025-03-01T11:59:59.000Z",
    "duration_ms": 0,
    "size_bytes": 0,
    "alignment_ms": 0,
    "path": "",
    "failure": "",
    "unaligned": false,
    "persisted_in_flight_bytes": 0
  },
  {
    "id": 12,
    "savepoint": false,
    "status": "COMPLETED",
    "trigger_time": "2025-03-01T11:59:49.000Z",
    "duration_ms": 340,
    "size_bytes": 1258291,
    "alignment_ms": 12,
    "path": "file:///tmp/cp/7f3c2a1e/chk-12",
    "failure": "",
    "unaligned": true,
    "persisted_in_flight_bytes": 2048
  },
  {
    "id": 11,
    "savepoint": false,
    "status": "FAILED",
    "trigger_time": "2025-03-01T11:59:39.000Z",
    "duration_ms": 10000,
    "size_bytes": 0,
    "alignment_ms": 0,
    "path": "",
    "failure": "checkpoint expired before completing",
    "unaligned": false,
    "persisted_in_flight_bytes": 0
  }
]
`, "", 0)
}

// Until the JobManager implements them, checkpoints, savepoint, stop and
// dispose answer Unimplemented, and weir prints the server's message.
func TestNotYetImplemented(t *testing.T) {
	addr := serve(t, &fakeJobService{})
	for _, tc := range []struct {
		args   []string
		stderr string
	}{
		{[]string{"checkpoints", "j1"}, "weir: method ListCheckpoints not implemented\n"},
		{[]string{"savepoint", "j1"}, "Triggering savepoint for job j1...\nweir: method TriggerSavepoint not implemented\n"},
		{[]string{"savepoint", "--dispose", "file:///sp/1"}, "weir: method DisposeSavepoint not implemented\n"},
		{[]string{"stop", "j1"}, "Stopping job j1 with a savepoint...\nweir: method StopJob not implemented\n"},
	} {
		weir(t, addr, tc.args...).check(t, "", tc.stderr, 1)
	}
}

func TestSavepointAndStop(t *testing.T) {
	f := &fakeJobService{
		savepoint: func(r *weirpb.TriggerSavepointRequest) (*weirpb.TriggerSavepointResponse, error) {
			dir := r.GetTargetDirectory()
			if dir == "" {
				dir = "file:///savepoints"
			}
			return &weirpb.TriggerSavepointResponse{Path: dir + "/savepoint-" + r.GetJobId() + "-000012"}, nil
		},
		stop: func(r *weirpb.StopJobRequest) (*weirpb.StopJobResponse, error) {
			return &weirpb.StopJobResponse{Path: r.GetTargetDirectory() + "/savepoint-" + r.GetJobId() + "-000013"}, nil
		},
		dispose: func(*weirpb.DisposeSavepointRequest) (*weirpb.DisposeSavepointResponse, error) {
			return &weirpb.DisposeSavepointResponse{}, nil
		},
	}
	addr := serve(t, f)
	weir(t, addr, "savepoint", "j1").check(t, "file:///savepoints/savepoint-j1-000012\n",
		"Triggering savepoint for job j1...\n"+
			"Savepoint completed. Resume with: weir run --from-savepoint file:///savepoints/savepoint-j1-000012 JOBFILE\n", 0)
	weir(t, addr, "savepoint", "j1", "file:///sp").check(t, "file:///sp/savepoint-j1-000012\n",
		"Triggering savepoint for job j1...\n"+
			"Savepoint completed. Resume with: weir run --from-savepoint file:///sp/savepoint-j1-000012 JOBFILE\n", 0)
	weir(t, addr, "savepoint", "-d", "file:///sp/savepoint-j1-000012").check(t,
		"Disposed savepoint file:///sp/savepoint-j1-000012\n", "", 0)
	weir(t, addr, "stop", "--savepoint-path", "file:///sp", "--drain", "j1").check(t, "file:///sp/savepoint-j1-000013\n",
		"Stopping job j1 with a savepoint...\nStopped job j1. Savepoint:\n", 0)

	want := []proto.Message{
		&weirpb.TriggerSavepointRequest{JobId: "j1"},
		&weirpb.TriggerSavepointRequest{JobId: "j1", TargetDirectory: "file:///sp"},
		&weirpb.DisposeSavepointRequest{Path: "file:///sp/savepoint-j1-000012"},
		&weirpb.StopJobRequest{JobId: "j1", TargetDirectory: "file:///sp", Drain: true},
	}
	checkRequests(t, f, want)
}

func checkRequests(t *testing.T, f *fakeJobService, want []proto.Message) {
	t.Helper()
	got := f.received()
	if len(got) != len(want) {
		t.Fatalf("server received %d requests %v, want %d", len(got), got, len(want))
	}
	for i := range want {
		if !proto.Equal(got[i].(proto.Message), want[i]) {
			t.Errorf("request %d: %v, want %v", i, got[i], want[i])
		}
	}
}

func TestVersion(t *testing.T) {
	platform := runtime.GOOS + "/" + runtime.GOARCH
	weir(t, "", "version").check(t, fmt.Sprintf("weir dev (%s %s)\n", runtime.Version(), platform), "", 0)
	weir(t, "", "version", "-o", "json").check(t, fmt.Sprintf(`{
  "version": "dev",
  "go": "%s",
  "platform": "%s"
}
`, runtime.Version(), platform), "", 0)
}

func TestUnreachableJobManager(t *testing.T) {
	addr := closedAddr(t)
	want := "weir: cannot reach the JobManager at " + addr +
		": connect: connection refused (is it running? set --jobmanager or WEIR_JOBMANAGER)\n"
	weir(t, addr, "list").check(t, "", want, 1)

	// The address from the environment, when --jobmanager is not given.
	r := weirApp(t, func(a *app) {
		a.getenv = func(k string) string { return map[string]string{EnvJobManager: addr}[k] }
	}, "", "status", "j1")
	r.check(t, "", want, 1)
}

func TestJobManagerFromEnvironment(t *testing.T) {
	addr := serve(t, &fakeJobService{list: func() (*weirpb.ListJobsResponse, error) {
		return &weirpb.ListJobsResponse{}, nil
	}})
	r := weirApp(t, func(a *app) {
		a.getenv = func(k string) string { return map[string]string{EnvJobManager: addr}[k] }
	}, "", "list", "-o", "json")
	r.check(t, "[]\n", "", 0)
}

func TestSlowJobManager(t *testing.T) {
	addr := serve(t, &fakeJobService{get: func(ctx context.Context, _ *weirpb.GetJobRequest) (*weirpb.JobDetails, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	}})
	weir(t, addr, "--timeout", "50ms", "status", "j1").check(t, "",
		"weir: the JobManager at "+addr+" did not answer within 50ms (set --timeout)\n", 1)
}

func TestUsageErrors(t *testing.T) {
	addr := closedAddr(t) // usage errors never reach the JobManager
	for _, tc := range []struct {
		args         []string
		stderrPrefix string
	}{
		{[]string{"status"}, "weir: accepts 1 arg(s), received 0\nUsage:\n  weir status JOBID [flags]\n"},
		{[]string{"cancel", "a", "b"}, "weir: accepts 1 arg(s), received 2\nUsage:\n  weir cancel JOBID [flags]\n"},
		{[]string{"run"}, "weir: accepts 1 arg(s), received 0\nUsage:\n  weir run [-d] [-s PATH [-n]] [-p N] [-D key=value]... JOBFILE [flags]\n"},
		{[]string{"list", "-o", "yaml"}, "weir: invalid argument \"yaml\" for \"-o, --output\" flag: must be \"table\" or \"json\"\nUsage:\n  weir list [-r] [-s] [-a] [flags]\n"},
		{[]string{"list", "--frobnicate"}, "weir: unknown flag: --frobnicate\nUsage:\n  weir list [-r] [-s] [-a] [flags]\n"},
		{[]string{"frobnicate"}, "weir: unknown command \"frobnicate\" for \"weir\"\n"},
		{[]string{"savepoint", "--dispose"}, "weir: accepts 1 arg(s), received 0\n"},
		{[]string{"cancel", "-o", "json", "j1"}, "weir: unknown shorthand flag: 'o' in -o\n"},
	} {
		r := weir(t, addr, tc.args...)
		if r.code != 2 || r.stdout != "" || !strings.HasPrefix(r.stderr, tc.stderrPrefix) {
			t.Errorf("weir %v: exit %d, stdout %q, stderr:\n%s\nwant exit 2 and stderr starting with:\n%s",
				tc.args, r.code, r.stdout, r.stderr, tc.stderrPrefix)
		}
	}
}

func TestHelpIsNotAnError(t *testing.T) {
	r := weir(t, "", "--help")
	if r.code != 0 || !strings.Contains(r.stdout, "Available Commands:") || r.stderr != "" {
		t.Errorf("weir --help: exit %d, stdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
}

// Unavailable or DeadlineExceeded answered by the JobManager itself are its
// own errors, not a connection problem: weir shows its message.
func TestServerUnavailableIsNotUnreachable(t *testing.T) {
	addr := serve(t, &fakeJobService{
		list: func() (*weirpb.ListJobsResponse, error) {
			return nil, status.Error(codes.Unavailable, "the JobManager is recovering its jobs, retry shortly")
		},
		savepoint: func(*weirpb.TriggerSavepointRequest) (*weirpb.TriggerSavepointResponse, error) {
			return nil, status.Error(codes.DeadlineExceeded, "savepoint 12 expired before completing")
		},
	})
	weir(t, addr, "list").check(t, "", "weir: the JobManager is recovering its jobs, retry shortly\n", 1)
	weir(t, addr, "savepoint", "j1").check(t, "",
		"Triggering savepoint for job j1...\nweir: savepoint 12 expired before completing\n", 1)
}

// Task failures already in the exception history are not repeated.
func TestStatusTaskFailures(t *testing.T) {
	d := &weirpb.JobDetails{Id: "j1", Name: "n", State: "FAILED", Parallelism: 2,
		Tasks: []*weirpb.TaskStatus{
			{Operator: "divide", Subtask: 0, State: "FAILED", Failure: "division by zero"},
			{Operator: "divide", Subtask: 1, State: "FAILED", Attempt: 1, Failure: "input closed"},
		},
		Exceptions: []*weirpb.JobException{{Task: "divide (1/2)", Message: "division by zero"}},
	}
	var out strings.Builder
	if err := writeJobDetailsTable(&out, d, testNow, time.UTC); err != nil {
		t.Fatal(err)
	}
	want := "" +
		"Job:          j1\n" +
		"Name:         n\n" +
		"State:        FAILED\n" +
		"Parallelism:  2\n" +
		"Started:      -\n" +
		"Duration:     -\n" +
		"\n" +
		"OPERATOR  SUBTASK  STATE   TASKMANAGER  RECORDS IN  RECORDS OUT\n" +
		"divide    0        FAILED  -            0           0\n" +
		"divide    1        FAILED  -            0           0\n" +
		"\n" +
		"Exceptions:\n" +
		"  -  divide (1/2): division by zero\n" +
		"\n" +
		"Task failures:\n" +
		"  divide (subtask 1, attempt 1): input closed\n"
	if out.String() != want {
		t.Errorf("got:\n%s\nwant:\n%s", out.String(), want)
	}
}
