package ha

import (
	"context"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"
)

func TestJobGraphs(t *testing.T) {
	forEachStore(t, func(t *testing.T, s store) {
		ctx := context.Background()
		if !s.IsLeader() {
			t.Fatal("the store under test must lead")
		}
		spec := []byte("name: a")
		if err := s.PutJobGraph(ctx, JobGraphRecord{JobID: "j2", Name: "a", FileName: "a.yaml", Spec: spec}); err != nil {
			t.Fatal(err)
		}
		spec[0] = 'X' // the store keeps its own copy
		if err := s.PutJobGraph(ctx, JobGraphRecord{JobID: "j1", Name: "b", Spec: []byte("name: b")}); err != nil {
			t.Fatal(err)
		}
		if err := s.PutJobGraph(ctx, JobGraphRecord{Name: "no id"}); err == nil {
			t.Fatal("empty job id accepted")
		}
		g, ok, err := s.JobGraph(ctx, "j2")
		if err != nil || !ok {
			t.Fatalf("JobGraph(j2) = %v, %v", ok, err)
		}
		want := JobGraphRecord{JobID: "j2", Name: "a", FileName: "a.yaml", Spec: []byte("name: a")}
		if !reflect.DeepEqual(g, want) {
			t.Fatalf("JobGraph(j2) = %+v, want %+v", g, want)
		}
		ids, _ := s.JobIDs(ctx)
		if !reflect.DeepEqual(ids, []string{"j1", "j2"}) {
			t.Fatalf("JobIDs = %v", ids)
		}
		if err := s.RemoveJob(ctx, "j2"); err != nil {
			t.Fatal(err)
		}
		if _, ok, _ := s.JobGraph(ctx, "j2"); ok {
			t.Fatal("removed job graph still there")
		}
		if err := s.RemoveJob(ctx, "unknown"); err != nil {
			t.Fatalf("RemoveJob(unknown) = %v", err)
		}
	})
}

func TestCheckpointIDCounterIsStrictlyIncreasingPerJob(t *testing.T) {
	forEachStore(t, func(t *testing.T, s store) {
		ctx := context.Background()
		var mu sync.Mutex
		seen := map[int64]bool{}
		var wg sync.WaitGroup
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range 25 {
					id, err := s.NextCheckpointID(ctx, "j")
					if err != nil {
						t.Error(err)
						return
					}
					mu.Lock()
					if seen[id] {
						t.Errorf("checkpoint id %d handed out twice", id)
					}
					seen[id] = true
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		for id := int64(1); id <= 100; id++ {
			if !seen[id] {
				t.Fatalf("id %d never handed out", id)
			}
		}
		if id, _ := s.NextCheckpointID(ctx, "other"); id != 1 {
			t.Fatalf("first id of another job = %d, want 1", id)
		}
	})
}

func TestCompletedCheckpoints(t *testing.T) {
	forEachStore(t, func(t *testing.T, s store) {
		ctx := context.Background()
		// The savepoint a job started from is its first restore point.
		if err := s.AddCompletedCheckpoint(ctx, "j", CompletedCheckpoint{CheckpointID: 3, Location: "file:///sp/savepoint-j-1", Savepoint: true}); err != nil {
			t.Fatal(err)
		}
		if err := s.AddCompletedCheckpoint(ctx, "j", CompletedCheckpoint{CheckpointID: 5, Location: "file:///c/chk-5"}); err != nil {
			t.Fatal(err)
		}
		for _, id := range []int64{5, 4} {
			err := s.AddCompletedCheckpoint(ctx, "j", CompletedCheckpoint{CheckpointID: id})
			if err == nil || err.Error() != "ha: add completed checkpoint "+strconv.FormatInt(id, 10)+" of job j: not after checkpoint 5" {
				t.Fatalf("AddCompletedCheckpoint(%d) = %v", id, err)
			}
		}
		got, _ := s.CompletedCheckpoints(ctx, "j")
		want := []CompletedCheckpoint{{3, "file:///sp/savepoint-j-1", true}, {5, "file:///c/chk-5", false}}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("CompletedCheckpoints = %+v, want %+v", got, want)
		}
		got[0].Location = "changed"
		again, _ := s.CompletedCheckpoints(ctx, "j")
		if again[0].Location != "file:///sp/savepoint-j-1" {
			t.Fatal("CompletedCheckpoints returned the store's own slice")
		}
		if none, _ := s.CompletedCheckpoints(ctx, "other"); len(none) != 0 {
			t.Fatalf("other job has checkpoints %v", none)
		}
	})
}

func TestRemoveCompletedCheckpoint(t *testing.T) {
	forEachStore(t, func(t *testing.T, s store) {
		ctx := context.Background()
		for _, id := range []int64{1, 2, 3} {
			if err := s.AddCompletedCheckpoint(ctx, "j", CompletedCheckpoint{CheckpointID: id, Location: "/c/chk-" + strconv.FormatInt(id, 10)}); err != nil {
				t.Fatal(err)
			}
		}
		for _, id := range []int64{1, 3, 7} { // 7: unknown, not an error
			if err := s.RemoveCompletedCheckpoint(ctx, "j", id); err != nil {
				t.Fatal(err)
			}
		}
		got, _ := s.CompletedCheckpoints(ctx, "j")
		if want := []CompletedCheckpoint{{CheckpointID: 2, Location: "/c/chk-2"}}; !reflect.DeepEqual(got, want) {
			t.Fatalf("CompletedCheckpoints = %+v, want %+v", got, want)
		}
		// 3 was removed, but a late completion of 3 must not come back.
		if err := s.AddCompletedCheckpoint(ctx, "j", CompletedCheckpoint{CheckpointID: 3}); err == nil || err.Error() != "ha: add completed checkpoint 3 of job j: not after checkpoint 3" {
			t.Fatalf("re-adding a removed checkpoint: %v", err)
		}
		if err := s.RemoveJob(ctx, "j"); err != nil {
			t.Fatal(err)
		}
		if err := s.AddCompletedCheckpoint(ctx, "j", CompletedCheckpoint{CheckpointID: 1}); err != nil {
			t.Fatalf("after RemoveJob: %v", err)
		}
	})
}

func TestCheckpointIDCounter(t *testing.T) {
	forEachStore(t, func(t *testing.T, s store) {
		ctx := context.Background()
		if next, _ := s.CheckpointIDCounter(ctx, "j"); next != 1 {
			t.Fatalf("new job: next id %d, want 1", next)
		}
		if err := s.SetCheckpointIDCounter(ctx, "j", 5); err != nil {
			t.Fatal(err)
		}
		if next, _ := s.CheckpointIDCounter(ctx, "j"); next != 5 {
			t.Fatalf("next id %d, want 5", next)
		}
		if id, _ := s.NextCheckpointID(ctx, "j"); id != 5 {
			t.Fatalf("NextCheckpointID = %d, want 5", id)
		}
		if err := s.SetCheckpointIDCounter(ctx, "j", 6); err != nil { // no change
			t.Fatal(err)
		}
		if err := s.SetCheckpointIDCounter(ctx, "j", 4); err == nil || err.Error() != "ha: set checkpoint id counter of job j to 4: already at 6" {
			t.Fatalf("moving the counter back: %v", err)
		}
		if next, _ := s.CheckpointIDCounter(ctx, "j"); next != 6 {
			t.Fatalf("next id %d, want 6", next)
		}
	})
}

func TestStandaloneLeadsUnfenced(t *testing.T) {
	if s := NewStandalone(); !s.IsLeader() || s.Epoch() != 0 {
		t.Fatalf("standalone: IsLeader %v, Epoch %d; want true, 0", s.IsLeader(), s.Epoch())
	}
}

func TestJobResults(t *testing.T) {
	forEachStore(t, func(t *testing.T, s store) {
		ctx := context.Background()
		end := time.Date(2026, 3, 1, 12, 0, 0, 5, time.FixedZone("CET", 3600))
		if err := s.PutJobGraph(ctx, JobGraphRecord{JobID: "j1", Name: "a", Spec: []byte("name: a")}); err != nil {
			t.Fatal(err)
		}
		if err := s.PutJobResult(ctx, "j1", JobResult{Name: "a", State: JobFailed, Error: "boom", EndTime: end}); err != nil {
			t.Fatal(err)
		}
		if err := s.RemoveJob(ctx, "j1"); err != nil {
			t.Fatal(err)
		}
		// The result outlives the job: a later leader must not run it again.
		r, ok, err := s.JobResult(ctx, "j1")
		want := JobResult{JobID: "j1", Name: "a", State: JobFailed, Error: "boom", EndTime: end.UTC()}
		if err != nil || !ok || !reflect.DeepEqual(r, want) {
			t.Fatalf("JobResult(j1) = %+v, %v, %v; want %+v", r, ok, err, want)
		}
		// Repeating the same state is a retry; another state is refused.
		if err := s.PutJobResult(ctx, "j1", JobResult{State: JobFailed}); err != nil {
			t.Fatalf("repeated result: %v", err)
		}
		if err := s.PutJobResult(ctx, "j1", JobResult{State: JobFinished}); err == nil || err.Error() != "ha: put result of job j1: it ended FAILED already" {
			t.Fatalf("a second, different result: %v", err)
		}
		for _, bad := range []struct {
			id   string
			r    JobResult
			want string
		}{
			{"j2", JobResult{State: "RUNNING"}, `ha: put result of job j2: state "RUNNING" is not FINISHED, FAILED or CANCELED`},
			{"j2", JobResult{JobID: "j3", State: JobFinished}, "ha: put result of job j2: the result names job j3"},
			{"", JobResult{State: JobFinished}, "ha: put job result: empty job id"},
		} {
			if err := s.PutJobResult(ctx, bad.id, bad.r); err == nil || err.Error() != bad.want {
				t.Errorf("PutJobResult(%q, %+v) = %v, want %s", bad.id, bad.r, err, bad.want)
			}
		}
		long := strings.Repeat("é", MaxJobResultError) // 2 bytes each: cut in the middle of one
		if err := s.PutJobResult(ctx, "j0", JobResult{State: JobCanceled, Error: long}); err != nil {
			t.Fatal(err)
		}
		rs, err := s.JobResults(ctx)
		if err != nil || len(rs) != 2 || rs[0].JobID != "j0" || rs[1].JobID != "j1" {
			t.Fatalf("JobResults = %+v, %v", rs, err)
		}
		if got := rs[0].Error; len(got) > MaxJobResultError+len(" ... (truncated)") || !strings.HasSuffix(got, "é ... (truncated)") || !utf8.ValidString(got) {
			t.Fatalf("a long error is kept as %d bytes ending %q", len(got), got[len(got)-20:])
		}
		if _, ok, err := s.JobResult(ctx, "unknown"); ok || err != nil {
			t.Fatalf("JobResult(unknown) = %v, %v", ok, err)
		}
	})
}

func TestJobAttemptOnlyMovesForward(t *testing.T) {
	forEachStore(t, func(t *testing.T, s store) {
		ctx := context.Background()
		if a, err := s.JobAttempt(ctx, "j"); a != 0 || err != nil {
			t.Fatalf("new job: attempt %d, %v", a, err)
		}
		for _, a := range []int{0, 2, 2, 3} {
			if err := s.SetJobAttempt(ctx, "j", a); err != nil {
				t.Fatalf("SetJobAttempt(%d): %v", a, err)
			}
		}
		if err := s.SetJobAttempt(ctx, "j", 1); err == nil || err.Error() != "ha: set attempt of job j to 1: already at 3" {
			t.Fatalf("moving the attempt back: %v", err)
		}
		if a, _ := s.JobAttempt(ctx, "j"); a != 3 {
			t.Fatalf("attempt %d, want 3", a)
		}
		if err := s.RemoveJob(ctx, "j"); err != nil {
			t.Fatal(err)
		}
		if a, _ := s.JobAttempt(ctx, "j"); a != 0 {
			t.Fatalf("attempt after RemoveJob %d, want 0", a)
		}
	})
}

func TestNegativeCheckpointIDIsRefused(t *testing.T) {
	forEachStore(t, func(t *testing.T, s store) {
		err := s.AddCompletedCheckpoint(context.Background(), "j", CompletedCheckpoint{CheckpointID: -1, Location: "/c"})
		if err == nil || err.Error() != "ha: add completed checkpoint -1 of job j: negative id" {
			t.Fatalf("AddCompletedCheckpoint(-1) = %v", err)
		}
	})
}
