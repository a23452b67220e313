package taskexec

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/weirstream/weir/pkg/snapshot"
)

// The cache reads a location once for concurrent callers and during its
// ttl, again after it; a failed read is not kept; a caller whose context
// ends stops waiting while the read goes on for the others.
func TestMetadataCache(t *testing.T) {
	now := time.Unix(1000, 0)
	var mu sync.Mutex
	reads := map[string]int{}
	release := make(chan struct{})
	fail := true
	c := NewMetadataCache(time.Minute)
	c.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	c.load = func(ctx context.Context, location string) (*snapshot.Metadata, error) {
		<-release
		mu.Lock()
		defer mu.Unlock()
		reads[location]++
		if location == "bad" && fail {
			return nil, errors.New("boom")
		}
		return &snapshot.Metadata{Dir: location, CheckpointID: int64(reads[location])}, nil
	}
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	readsOf := func(loc string) int { mu.Lock(); defer mu.Unlock(); return reads[loc] }

	// A caller that gives up while the read is under way.
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := c.Load(ctx, "a"); !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled caller: %v", err)
	}
	var wg sync.WaitGroup
	got := make([]int64, 5)
	for i := range got {
		wg.Go(func() {
			md, err := c.Load(t.Context(), "a")
			if err != nil {
				t.Error(err)
				return
			}
			got[i] = md.CheckpointID
		})
	}
	close(release)
	wg.Wait()
	for i, id := range got {
		if id != 1 {
			t.Fatalf("caller %d got read %d, want the one shared read", i, id)
		}
	}
	advance(59 * time.Second)
	if md, _ := c.Load(t.Context(), "a"); md.CheckpointID != 1 || readsOf("a") != 1 {
		t.Fatalf("within the ttl: read %d, %d reads", md.CheckpointID, readsOf("a"))
	}
	advance(2 * time.Second)
	if md, _ := c.Load(t.Context(), "a"); md.CheckpointID != 2 || readsOf("a") != 2 {
		t.Fatalf("after the ttl: read %d, %d reads", md.CheckpointID, readsOf("a"))
	}

	if _, err := c.Load(t.Context(), "bad"); err == nil || err.Error() != "boom" {
		t.Fatalf("failed read: %v", err)
	}
	mu.Lock()
	fail = false
	mu.Unlock()
	if md, err := c.Load(t.Context(), "bad"); err != nil || md.CheckpointID != 2 {
		t.Fatalf("read after a failure: %v, %v (a failure must not be kept)", md, err)
	}
}
