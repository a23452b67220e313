package ha

import (
	"context"
	"reflect"
	"strconv"
	"sync"
	"testing"
)

func TestJobGraphs(t *testing.T) {
	ctx := context.Background()
	s := NewStandalone()
	if !s.IsLeader() {
		t.Fatal("standalone must always be the leader")
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
}

func TestCheckpointIDCounterIsStrictlyIncreasingPerJob(t *testing.T) {
	ctx := context.Background()
	s := NewStandalone()
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
}

func TestCompletedCheckpoints(t *testing.T) {
	ctx := context.Background()
	s := NewStandalone()
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
}

func TestRemoveCompletedCheckpoint(t *testing.T) {
	ctx := context.Background()
	s := NewStandalone()
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
}

func TestCheckpointIDCounter(t *testing.T) {
	ctx := context.Background()
	s := NewStandalone()
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
}
