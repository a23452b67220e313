package s3

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"iter"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/weirstream/weir/pkg/snapshot"
)

// store implements snapshot.Store on one client; native paths are
// bucket/key.
type store struct {
	client   *minio.Client
	core     minio.Core
	endpoint string
	cfg      Config
}

var (
	_ snapshot.Store           = (*store)(nil)
	_ snapshot.Copier          = (*store)(nil)
	_ snapshot.EntropyInjector = (*store)(nil)
)

// objectKey splits a native path into bucket and key, refusing a bare
// bucket (every object has a key).
func objectKey(op, native string) (string, string, error) {
	bucket, key := split(native)
	if key == "" {
		return "", "", &Error{Op: op, Bucket: bucket, Err: errNoKey}
	}
	return bucket, key, nil
}

func (s *store) Entropy() (string, int) { return s.cfg.EntropyKey, s.cfg.EntropyLength }

func (s *store) Join(dir, name string) string { return strings.TrimRight(dir, "/") + "/" + name }

// Object stores have no directories.
func (s *store) RemoveDirIfEmpty(context.Context, string) error { return nil }
func (s *store) MkdirUnique(context.Context, string) error      { return nil }

// Publish is one PUT with If-None-Match: *, so that it creates the object
// or fails: of two writers of one _metadata, at most one succeeds.
func (s *store) Publish(ctx context.Context, p string, data []byte) error {
	bucket, key, err := objectKey("put", p)
	if err != nil {
		return err
	}
	opts := minio.PutObjectOptions{ContentType: "application/octet-stream"}
	opts.SetMatchETagExcept("*")
	attempt := 0
	err = s.do(ctx, "put", bucket, key, func(ctx context.Context) error {
		attempt++
		_, err := s.core.PutObject(ctx, bucket, key, bytes.NewReader(data), int64(len(data)), "", "", opts)
		if err != nil && attempt > 1 && minio.ToErrorResponse(err).Code == "PreconditionFailed" && s.holds(ctx, bucket, key, data) {
			// An earlier attempt created it and its answer was lost.
			return nil
		}
		return err
	})
	if errors.Is(err, fs.ErrExist) {
		return snapshot.ExistsError(Scheme + "://" + p)
	}
	return err
}

// holds reports whether the object holds exactly data.
func (s *store) holds(ctx context.Context, bucket, key string, data []byte) bool {
	rc, info, _, err := s.core.GetObject(ctx, bucket, key, minio.GetObjectOptions{})
	if err != nil {
		return false
	}
	defer func() { _ = rc.Close() }()
	if info.Size != int64(len(data)) {
		return false
	}
	b, err := io.ReadAll(io.LimitReader(rc, int64(len(data))+1))
	return err == nil && bytes.Equal(b, data)
}

// Open is a GET, ranged from off; the total size comes from the response
// (Content-Range for a range).
func (s *store) Open(ctx context.Context, p string, off int64) (io.ReadCloser, int64, error) {
	bucket, key, err := objectKey("get", p)
	if err != nil {
		return nil, 0, err
	}
	var rc io.ReadCloser
	var size int64
	err = s.do(ctx, "get", bucket, key, func(ctx context.Context) error {
		opts := minio.GetObjectOptions{}
		if off > 0 {
			if err := opts.SetRange(off, 0); err != nil {
				return err
			}
		}
		body, info, hdr, err := s.core.GetObject(ctx, bucket, key, opts)
		if err != nil {
			if off > 0 && minio.ToErrorResponse(err).Code == "InvalidRange" {
				// Reading from the end: nothing to read, if it is the end.
				st, serr := s.client.StatObject(ctx, bucket, key, minio.StatObjectOptions{})
				if serr != nil {
					return serr
				}
				if st.Size == off {
					rc, size = io.NopCloser(bytes.NewReader(nil)), st.Size
					return nil
				}
			}
			return err
		}
		size = info.Size
		if off > 0 {
			size = -1
			if cr := hdr.Get("Content-Range"); cr != "" {
				if _, total, ok := strings.Cut(cr, "/"); ok {
					if n, perr := strconv.ParseInt(total, 10, 64); perr == nil {
						size = n
					}
				}
			}
			if size < 0 {
				_ = body.Close()
				return fmt.Errorf("ranged GET without a Content-Range: %w", errNoRange)
			}
		}
		rc = body
		return nil
	})
	if err != nil {
		return nil, 0, err
	}
	return &reader{rc: rc, s: s, bucket: bucket, key: key}, size, nil
}

var errNoRange = errors.New("the store ignored the range")

// reader names the object in read errors.
type reader struct {
	rc          io.ReadCloser
	s           *store
	bucket, key string
}

func (r *reader) Read(p []byte) (int, error) {
	n, err := r.rc.Read(p)
	if err != nil && err != io.EOF {
		err = r.s.newError("get", r.bucket, r.key, err, 1)
	}
	return n, err
}

func (r *reader) Close() error { return r.rc.Close() }

// Remove deletes objects with DeleteObjects requests of up to 1000 keys,
// repeating those that failed for a retryable reason.
func (s *store) Remove(ctx context.Context, paths ...string) error {
	byBucket := map[string][]string{}
	var buckets []string
	for _, p := range paths {
		bucket, key, err := objectKey("delete", p)
		if err != nil {
			return err
		}
		if _, ok := byBucket[bucket]; !ok {
			buckets = append(buckets, bucket)
		}
		byBucket[bucket] = append(byBucket[bucket], key)
	}
	var errs []error
	for _, b := range buckets {
		if err := s.removeKeys(ctx, b, byBucket[b]); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (s *store) removeKeys(ctx context.Context, bucket string, keys []string) error {
	var final []error
	left := keys
	err := s.do(ctx, "delete", bucket, firstKey(keys), func(ctx context.Context) error {
		results, err := s.client.RemoveObjectsWithIter(ctx, bucket, objectInfos(left), minio.RemoveObjectsOptions{})
		if err != nil {
			return err
		}
		var again []string
		var last error
		for r := range results {
			switch {
			case r.Err == nil, minio.ToErrorResponse(r.Err).Code == "NoSuchKey":
			case retryable(r.Err):
				again, last = append(again, r.ObjectName), r.Err
			default:
				final = append(final, s.newError("delete", bucket, r.ObjectName, r.Err, 1))
			}
		}
		left = again
		return last
	})
	if err != nil {
		final = append(final, err)
	}
	if len(final) > 3 {
		final = append(final[:3], fmt.Errorf("and %d more objects in s3://%s", len(final)-3, bucket))
	}
	return errors.Join(final...)
}

func firstKey(keys []string) string {
	if len(keys) == 1 {
		return keys[0]
	}
	return ""
}

func objectInfos(keys []string) iter.Seq[minio.ObjectInfo] {
	return func(yield func(minio.ObjectInfo) bool) {
		for _, k := range keys {
			if !yield(minio.ObjectInfo{Key: k}) {
				return
			}
		}
	}
}

// removeBatch is how many listed keys RemoveAll deletes at a time.
const removeBatch = 1000

// RemoveAll lists the objects under dir/ and deletes them in batches, then
// aborts the multipart uploads left under it (a writer that died).
func (s *store) RemoveAll(ctx context.Context, dir string) error {
	bucket, key := split(strings.TrimRight(dir, "/"))
	prefix := key + "/"
	if key == "" {
		prefix = ""
	}
	var batch []string
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		err := s.removeKeys(ctx, bucket, batch)
		batch = batch[:0]
		return err
	}
	err := s.do(ctx, "list", bucket, prefix, func(ctx context.Context) error {
		for o := range s.client.ListObjectsIter(ctx, bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
			if o.Err != nil {
				return o.Err
			}
			batch = append(batch, o.Key)
			if len(batch) == removeBatch {
				if err := flush(); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err == nil {
		err = flush()
	}
	if err != nil {
		return err
	}
	return s.abortUploads(ctx, bucket, prefix)
}

func (s *store) abortUploads(ctx context.Context, bucket, prefix string) error {
	var keyMarker, idMarker string
	for {
		var res minio.ListMultipartUploadsResult
		err := s.do(ctx, "list uploads", bucket, prefix, func(ctx context.Context) error {
			var err error
			res, err = s.core.ListMultipartUploads(ctx, bucket, prefix, keyMarker, idMarker, "", 1000)
			return err
		})
		if err != nil {
			return err
		}
		for _, u := range res.Uploads {
			err := s.do(ctx, "abort upload", bucket, u.Key, func(ctx context.Context) error {
				return s.core.AbortMultipartUpload(ctx, bucket, u.Key, u.UploadID)
			})
			if err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
		}
		if !res.IsTruncated {
			return nil
		}
		keyMarker, idMarker = res.NextKeyMarker, res.NextUploadIDMarker
	}
}

// maxCopySize is the largest object one CopyObject request copies.
const maxCopySize = 5 << 30

// Copy copies an object server-side (CopyObject; ComposeObject, which
// copies in parts, beyond 5 GiB), after checking its size.
func (s *store) Copy(ctx context.Context, src, dst string, size int64) error {
	sb, sk, err := objectKey("copy", src)
	if err != nil {
		return err
	}
	db, dk, err := objectKey("copy", dst)
	if err != nil {
		return err
	}
	var st minio.ObjectInfo
	err = s.do(ctx, "stat", sb, sk, func(ctx context.Context) error {
		var err error
		st, err = s.client.StatObject(ctx, sb, sk, minio.StatObjectOptions{})
		return err
	})
	if err != nil {
		return err
	}
	if st.Size != size {
		return fmt.Errorf("%w: state file s3://%s/%s has %d bytes, the metadata says %d (truncated or corrupt)", snapshot.ErrCorrupt, sb, sk, st.Size, size)
	}
	srcOpts := minio.CopySrcOptions{Bucket: sb, Object: sk, MatchETag: st.ETag}
	dstOpts := minio.CopyDestOptions{Bucket: db, Object: dk}
	return s.do(ctx, "copy", db, dk, func(ctx context.Context) error {
		if size > maxCopySize {
			_, err := s.client.ComposeObject(ctx, dstOpts, srcOpts)
			return err
		}
		_, err := s.client.CopyObject(ctx, dstOpts, srcOpts)
		return err
	})
}

// Create returns a writer that buffers up to PartSize bytes: a small
// object is one PUT at Close, a larger one a multipart upload whose parts
// are sent as they fill.
func (s *store) Create(ctx context.Context, p string) (snapshot.BlobWriter, error) {
	bucket, key, err := objectKey("put", p)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return &writer{ctx: ctx, s: s, bucket: bucket, key: key}, nil
}

type writer struct {
	ctx         context.Context
	s           *store
	bucket, key string
	buf         []byte
	uploadID    string // "" until the first part is sent
	parts       []minio.CompletePart
	err         error // sticky
	done        bool
}

func (w *writer) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	n := 0
	for len(p) > 0 {
		k := min(len(p), PartSize-len(w.buf))
		w.buf = append(w.buf, p[:k]...)
		p, n = p[k:], n+k
		if len(w.buf) == PartSize {
			if err := w.sendPart(); err != nil {
				return n, err
			}
		}
	}
	return n, nil
}

func (w *writer) sendPart() error {
	if w.uploadID == "" {
		err := w.s.do(w.ctx, "create upload", w.bucket, w.key, func(ctx context.Context) error {
			id, err := w.s.core.NewMultipartUpload(ctx, w.bucket, w.key, minio.PutObjectOptions{ContentType: "application/octet-stream"})
			w.uploadID = id
			return err
		})
		if err != nil {
			w.err = err
			return err
		}
	}
	num := len(w.parts) + 1
	err := w.s.do(w.ctx, "upload part "+strconv.Itoa(num)+" of", w.bucket, w.key, func(ctx context.Context) error {
		part, err := w.s.core.PutObjectPart(ctx, w.bucket, w.key, w.uploadID, num, bytes.NewReader(w.buf), int64(len(w.buf)), minio.PutObjectPartOptions{})
		if err == nil {
			w.parts = append(w.parts, minio.CompletePart{PartNumber: num, ETag: part.ETag})
		}
		return err
	})
	if err != nil {
		w.err = err
		return err
	}
	w.buf = w.buf[:0]
	return nil
}

func (w *writer) Close() error {
	if w.done {
		return errors.New("s3 writer closed already")
	}
	if w.err != nil {
		_ = w.Abort()
		return w.err
	}
	if w.uploadID == "" {
		err := w.s.do(w.ctx, "put", w.bucket, w.key, func(ctx context.Context) error {
			_, err := w.s.core.PutObject(ctx, w.bucket, w.key, bytes.NewReader(w.buf), int64(len(w.buf)), "", "", minio.PutObjectOptions{ContentType: "application/octet-stream"})
			return err
		})
		w.done, w.buf = true, nil
		return err
	}
	if len(w.buf) > 0 {
		if err := w.sendPart(); err != nil {
			_ = w.Abort()
			return err
		}
	}
	err := w.s.do(w.ctx, "complete upload", w.bucket, w.key, func(ctx context.Context) error {
		_, err := w.s.core.CompleteMultipartUpload(ctx, w.bucket, w.key, w.uploadID, slices.Clone(w.parts), minio.PutObjectOptions{})
		return err
	})
	if err != nil {
		_ = w.Abort()
		return err
	}
	w.done, w.buf = true, nil
	return nil
}

// abortTimeout bounds aborting an upload, also for a writer whose task was
// canceled: a bucket lifecycle rule (AbortIncompleteMultipartUpload) is the
// backstop when the store is down.
const abortTimeout = 10 * time.Second

// Abort aborts the multipart upload, if one was started, so that its
// parts do not linger (and cost); a small object was never sent. It runs
// even if the writer's context has ended (with the retry budget).
func (w *writer) Abort() error {
	if w.done {
		return nil
	}
	w.done, w.buf = true, nil
	if w.uploadID == "" {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(w.ctx), abortTimeout)
	defer cancel()
	err := w.s.do(ctx, "abort upload", w.bucket, w.key, func(ctx context.Context) error {
		return w.s.core.AbortMultipartUpload(ctx, w.bucket, w.key, w.uploadID)
	})
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}
