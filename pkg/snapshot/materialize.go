package snapshot

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"
)

// MaterializeSavepoint makes a savepoint self-contained in dst, a location
// from Storage.SavepointLocation: it copies every state file that m
// references from the checkpoint directory src (where the tasks wrote
// them, a Location.Path) into dst under the same base names, then writes
// m as dst's _metadata, last. Inline state needs no copy (jobmanager
// storage has nothing else). It returns the size of the _metadata.
//
// When src and dst are in the same store and the store copies objects
// itself (Copier: S3 CopyObject), the bytes never pass through this
// process, and only their size is checked (the store keeps its own
// checksums). Otherwise each file is read through OpenState, so its size
// and CRC-32C are checked while it is copied. Either way a damaged or
// missing file fails the savepoint rather than being preserved. A file
// referenced by several state objects is copied once. If copying or
// writing fails, dst is disposed of (it was created for this savepoint and
// nothing refers to it); src is never modified.
func MaterializeSavepoint(ctx context.Context, m *Metadata, src string, dst Location) (int64, error) {
	d, ok := dst.(*location)
	if !ok {
		return 0, fmt.Errorf("materialize savepoint: %T is not a location of this package", dst)
	}
	if !m.Savepoint || !d.savepoint {
		return 0, fmt.Errorf("materialize savepoint %s: metadata says savepoint=%t, the location is a %s", d.display, m.Savepoint, d.kind())
	}
	fail := func(err error) (int64, error) {
		// Clean up even when ctx has ended: dst would be an orphan.
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
		defer cancel()
		if derr := d.Dispose(dctx); derr != nil {
			err = errors.Join(err, derr)
		}
		return 0, fmt.Errorf("materialize savepoint %s: %w", d.display, err)
	}
	sp := relocated(m)
	if err := sp.Validate(); err != nil {
		return fail(fmt.Errorf("invalid metadata: %w", err))
	}
	srcR, err := resolve(src)
	if err != nil {
		return fail(err)
	}
	copier, _ := d.store.(Copier)
	if srcR.store != d.store {
		copier = nil
	}
	copied := make(map[string]bool)
	for _, op := range m.Operators {
		for _, st := range op.Subtasks {
			for _, o := range st.State {
				if o.IsInline() || copied[o.Path] {
					continue
				}
				copied[o.Path] = true
				if copier != nil {
					err = copyServerSide(ctx, copier, srcR, o.StateHandle, d)
				} else {
					err = copyStateFile(ctx, src, o.StateHandle, d)
				}
				if err != nil {
					return fail(err)
				}
			}
		}
	}
	n, err := d.WriteMetadata(ctx, sp)
	if err != nil {
		return fail(err)
	}
	return n, nil
}

// cleanupTimeout bounds deleting what a failed operation left behind after
// its own context has ended.
const cleanupTimeout = 30 * time.Second

// relocated returns a copy of m whose handles name files in the savepoint's
// own directory: without the entropy the checkpoint's files had.
func relocated(m *Metadata) *Metadata {
	c := *m
	c.Operators = make([]OperatorState, len(m.Operators))
	for i, op := range m.Operators {
		op.Subtasks = make([]SubtaskState, len(m.Operators[i].Subtasks))
		for j, st := range m.Operators[i].Subtasks {
			st.State = make([]StateObject, len(m.Operators[i].Subtasks[j].State))
			for k, o := range m.Operators[i].Subtasks[j].State {
				o.Entropy, o.EntropyAt = "", 0
				st.State[k] = o
			}
			op.Subtasks[j] = st
		}
		c.Operators[i] = op
	}
	return &c
}

func copyServerSide(ctx context.Context, c Copier, src resolved, h StateHandle, dst *location) error {
	if err := h.validate(); err != nil {
		return fmt.Errorf("copy state file %s: %w", h.Path, err)
	}
	from, err := objectPath(src.store, src.native, h)
	if err != nil {
		return err
	}
	if err := c.Copy(ctx, from, dst.store.Join(dst.dir, h.Path), h.Size); err != nil {
		return fmt.Errorf("copy state file %s to %s: %w", src.display(from), dst.display, err)
	}
	return nil
}

// copyStateFile copies the file of h from the directory src into dst under
// the same name, verifying it on the way, and makes the copy durable.
func copyStateFile(ctx context.Context, src string, h StateHandle, dst *location) error {
	r, err := OpenState(ctx, src, h)
	if err != nil {
		return fmt.Errorf("copy state file %s: %w", h.Path, err)
	}
	defer func() { _ = r.Close() }()
	w, err := dst.store.Create(ctx, dst.store.Join(dst.dir, h.Path))
	if err != nil {
		return fmt.Errorf("create state file %s: %w", dst.fileDisplay(h.Path), err)
	}
	if _, err := io.Copy(w, r); err != nil {
		_ = w.Abort()
		return fmt.Errorf("copy state file %s to %s: %w", h.Path, dst.display, err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("close state file %s: %w", dst.fileDisplay(h.Path), err)
	}
	return nil
}
