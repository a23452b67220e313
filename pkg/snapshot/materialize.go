package snapshot

import (
	"errors"
	"fmt"
	"io"
)

// MaterializeSavepoint makes a savepoint self-contained in dst, a location
// from Storage.SavepointLocation: it copies every state file that m
// references from the checkpoint directory src (where the tasks wrote
// them, a Location.Path) into dst under the same base names, then writes
// m as dst's _metadata, last. Inline state needs no copy (jobmanager
// storage has nothing else). It returns the size of the _metadata.
//
// Each file is read through OpenState, so its size and CRC-32C are checked
// while it is copied: a damaged or missing file fails the savepoint rather
// than being preserved. A file referenced by several state objects is
// copied once. If copying or writing fails, dst is disposed of (it was
// created for this savepoint and nothing refers to it); src is never
// modified.
func MaterializeSavepoint(m *Metadata, src string, dst Location) (int64, error) {
	d, ok := dst.(*location)
	if !ok {
		return 0, fmt.Errorf("materialize savepoint: %T is not a location of this package", dst)
	}
	if !m.Savepoint || !d.savepoint {
		return 0, fmt.Errorf("materialize savepoint %s: metadata says savepoint=%t, the location is a %s", d.display, m.Savepoint, d.kind())
	}
	fail := func(err error) (int64, error) {
		if derr := d.Dispose(); derr != nil {
			err = errors.Join(err, derr)
		}
		return 0, fmt.Errorf("materialize savepoint %s: %w", d.display, err)
	}
	if err := m.Validate(); err != nil {
		return fail(fmt.Errorf("invalid metadata: %w", err))
	}
	copied := make(map[string]bool)
	for _, op := range m.Operators {
		for _, st := range op.Subtasks {
			for _, o := range st.State {
				if o.IsInline() || copied[o.Path] {
					continue
				}
				copied[o.Path] = true
				if err := copyStateFile(src, o.StateHandle, d); err != nil {
					return fail(err)
				}
			}
		}
	}
	n, err := d.WriteMetadata(m)
	if err != nil {
		return fail(err)
	}
	return n, nil
}

// copyStateFile copies the file of h from the directory src into dst under
// the same name, verifying it on the way, and makes the copy durable.
func copyStateFile(src string, h StateHandle, dst *location) error {
	r, err := OpenState(src, h)
	if err != nil {
		return fmt.Errorf("copy state file %s: %w", h.Path, err)
	}
	defer func() { _ = r.Close() }()
	w, err := dst.store.create(dst.store.join(dst.dir, h.Path))
	if err != nil {
		return fmt.Errorf("create state file %s: %w", dst.fileDisplay(h.Path), err)
	}
	if _, err := io.Copy(w, r); err != nil {
		_ = w.abort()
		return fmt.Errorf("copy state file %s to %s: %w", h.Path, dst.display, err)
	}
	if err := w.close(); err != nil {
		return fmt.Errorf("close state file %s: %w", dst.fileDisplay(h.Path), err)
	}
	return nil
}
