package taskexec

import (
	"context"
	"sync"
	"time"

	"github.com/weirstream/weir/pkg/snapshot"
)

// MetadataCache reads checkpoint metadata for the restores of a
// TaskManager's tasks: the subtasks of a job restore together, and all of
// those on one TaskManager then share one read of the _metadata instead of
// one each. A read result is kept for ttl after it arrived (a restore
// after the next failure reads the newer checkpoint, at another location);
// a failed read is not kept. Safe for concurrent use.
type MetadataCache struct {
	ttl  time.Duration
	load func(ctx context.Context, location string) (*snapshot.Metadata, error)
	now  func() time.Time

	mu      sync.Mutex
	entries map[string]*metadataEntry
}

type metadataEntry struct {
	done   chan struct{} // closed when md and err are set
	md     *snapshot.Metadata
	err    error
	loaded time.Time
}

// metadataLoadTimeout bounds one shared read: it runs on after the task
// that started it is canceled, for the others that wait for it.
const metadataLoadTimeout = time.Minute

// NewMetadataCache returns a cache that keeps what it read for ttl.
func NewMetadataCache(ttl time.Duration) *MetadataCache {
	return &MetadataCache{ttl: ttl, load: snapshot.LoadMetadata, now: time.Now, entries: map[string]*metadataEntry{}}
}

// Load returns the metadata at location, read once for every caller that
// asks while it is read and during ttl after. It returns early with ctx's
// error when ctx ends first. The result is shared: callers must not
// modify it.
func (c *MetadataCache) Load(ctx context.Context, location string) (*snapshot.Metadata, error) {
	c.mu.Lock()
	now := c.now()
	for loc, e := range c.entries {
		if !e.loaded.IsZero() && now.Sub(e.loaded) > c.ttl {
			delete(c.entries, loc)
		}
	}
	e, ok := c.entries[location]
	if !ok {
		e = &metadataEntry{done: make(chan struct{})}
		c.entries[location] = e
		go c.read(context.WithoutCancel(ctx), location, e)
	}
	c.mu.Unlock()
	select {
	case <-e.done:
		return e.md, e.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (c *MetadataCache) read(ctx context.Context, location string, e *metadataEntry) {
	ctx, cancel := context.WithTimeout(ctx, metadataLoadTimeout)
	defer cancel()
	md, err := c.load(ctx, location)
	c.mu.Lock()
	e.md, e.err, e.loaded = md, err, c.now()
	if err != nil && c.entries[location] == e {
		delete(c.entries, location)
	}
	c.mu.Unlock()
	close(e.done)
}
