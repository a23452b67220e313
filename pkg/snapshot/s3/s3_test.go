package s3_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"reflect"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap"

	"github.com/weirstream/weir/pkg/config"
	"github.com/weirstream/weir/pkg/internal/miniotest"
	"github.com/weirstream/weir/pkg/snapshot"
	"github.com/weirstream/weir/pkg/snapshot/s3"
	"github.com/weirstream/weir/pkg/state"
)

// Idle keep-alive connections of the clients (one per endpoint and
// credentials, for the process's life) are not leaks.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreAnyFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreAnyFunction("net/http.(*persistConn).writeLoop"))
}

// driverConfig is the driver's configuration for srv, with short backoffs:
// the retry tests wait for them.
func driverConfig(srv *miniotest.Server) s3.Config {
	return s3.Config{
		Endpoint: srv.URL, AccessKey: s3.Secret(srv.AccessKey), SecretKey: s3.Secret(srv.SecretKey),
		Region: "us-east-1", PathStyle: true, MinBackoff: 10 * time.Millisecond, MaxBackoff: 100 * time.Millisecond,
	}
}

func register(t *testing.T, c s3.Config) {
	t.Helper()
	d, err := s3.New(c)
	if err != nil {
		t.Fatal(err)
	}
	snapshot.Register(s3.Scheme, d)
}

func open(t *testing.T, uri string) snapshot.Storage {
	t.Helper()
	s, err := snapshot.OpenWithOptions(uri, zap.NewNop(), snapshot.Options{FileInlineThreshold: -1})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func write(t *testing.T, loc snapshot.Location, name, data string) snapshot.StateHandle {
	t.Helper()
	w, err := loc.CreateStateFile(t.Context(), name)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.WriteString(w, data)
	h, err := w.Close()
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func metadata(job string, id int64, savepoint bool, hs ...snapshot.StateHandle) *snapshot.Metadata {
	var objs []snapshot.StateObject
	for _, h := range hs {
		objs = append(objs, snapshot.StateObject{Kind: snapshot.KindOperator, StateHandle: h})
	}
	return &snapshot.Metadata{JobID: job, CheckpointID: id, Savepoint: savepoint, MaxParallelism: 4,
		Operators: []snapshot.OperatorState{{ID: "op", Type: "map", Parallelism: 1, Subtasks: []snapshot.SubtaskState{{Subtask: 0, State: objs}}}}}
}

func readAll(t *testing.T, dir string, h snapshot.StateHandle) string {
	t.Helper()
	rc, err := snapshot.OpenState(t.Context(), dir, h)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = rc.Close() }()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// Of writers racing to complete the same checkpoint, exactly one creates
// its _metadata (If-None-Match: *); the others are told it exists.
func TestConditionalCreateRefusesSecondMetadata(t *testing.T) {
	srv := miniotest.Start(t)
	register(t, driverConfig(srv))
	s := open(t, "s3://"+srv.Bucket+"/cp")
	loc, _ := s.CheckpointLocation("job1", 1)
	h := write(t, loc, "op", "state")
	const writers = 8
	var wg sync.WaitGroup
	errs := make([]error, writers)
	for i := range writers {
		wg.Go(func() {
			m := metadata("job1", 1, false, h)
			m.JobName = fmt.Sprint("writer ", i) // different bytes from each
			_, errs[i] = loc.WriteMetadata(t.Context(), m)
		})
	}
	wg.Wait()
	won := -1
	for i, err := range errs {
		switch {
		case err == nil && won >= 0:
			t.Fatalf("writers %d and %d both wrote _metadata", won, i)
		case err == nil:
			won = i
		case !errors.Is(err, fs.ErrExist):
			t.Fatalf("writer %d: %v", i, err)
		}
	}
	if won < 0 {
		t.Fatal("no writer wrote _metadata")
	}
	m, err := snapshot.LoadMetadata(t.Context(), loc.Path())
	if err != nil || m.JobName != fmt.Sprint("writer ", won) {
		t.Fatalf("_metadata of %q, %v; want the winner's, writer %d", m.JobName, err, won)
	}
}

// With s3.entropy.key, state objects get random characters where the key
// was and _metadata none; everything still restores, savepoints are
// self-contained (no entropy), and Dispose finds the objects through the
// _metadata (pointers, not listings).
func TestEntropyInjection(t *testing.T) {
	srv := miniotest.Start(t)
	c := driverConfig(srv)
	c.EntropyKey, c.EntropyLength = "_entropy_", 4
	register(t, c)
	ctx := t.Context()
	s := open(t, "s3://"+srv.Bucket+"/_entropy_/cp")
	loc, _ := s.CheckpointLocation("job1", 1)
	if want := "s3://" + srv.Bucket + "/cp/job1/chk-1"; loc.Path() != want {
		t.Fatalf("Path %q, want %q", loc.Path(), want)
	}
	tm, _ := open(t, "s3://"+srv.Bucket+"/_entropy_/cp").ResolveLocation(loc.Path())
	h1, h2 := write(t, tm, "op-0", "first state"), write(t, tm, "op-1", "second state")
	if h1.Entropy == "" || h1.Entropy == h2.Entropy && h1.Entropy == "" || h1.EntropyAt != len(srv.Bucket)+1 {
		t.Fatalf("handles %+v %+v", h1, h2)
	}
	if _, err := loc.WriteMetadata(ctx, metadata("job1", 1, false, h1, h2)); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"cp/job1/chk-1/_metadata",
		h1.Entropy + "/cp/job1/chk-1/" + h1.Path,
		h2.Entropy + "/cp/job1/chk-1/" + h2.Path,
	}
	got := srv.Objects(srv.Bucket, "")
	if !sameSet(got, want) {
		t.Fatalf("objects %q, want %q", got, want)
	}
	for _, k := range got[1:] {
		if !regexp.MustCompile(`^([a-z0-9]{4}/)?cp/job1/chk-1/`).MatchString(k) {
			t.Fatalf("key %q", k)
		}
	}
	m, err := snapshot.LoadMetadata(ctx, loc.Path())
	if err != nil {
		t.Fatal(err)
	}
	if a, b := readAll(t, m.Dir, m.Operators[0].Subtasks[0].State[0].StateHandle), readAll(t, m.Dir, m.Operators[0].Subtasks[0].State[1].StateHandle); a != "first state" || b != "second state" {
		t.Fatalf("read %q %q", a, b)
	}

	// A savepoint copies the state into its own directory: no entropy.
	sm := metadata("job1", 1, true, h1, h2)
	dst, err := s.SavepointLocation(ctx, "s3://"+srv.Bucket+"/_entropy_/sp", "job1")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(dst.Path(), "s3://"+srv.Bucket+"/sp/savepoint-job1-") {
		t.Fatalf("savepoint path %q", dst.Path())
	}
	if _, err := snapshot.MaterializeSavepoint(ctx, sm, loc.Path(), dst); err != nil {
		t.Fatal(err)
	}
	sp, err := snapshot.LoadMetadata(ctx, dst.Path())
	if err != nil {
		t.Fatal(err)
	}
	for i, o := range sp.Operators[0].Subtasks[0].State {
		if o.Entropy != "" || o.EntropyAt != 0 {
			t.Fatalf("savepoint state %d has entropy: %+v", i, o)
		}
	}
	if a := readAll(t, sp.Dir, sp.Operators[0].Subtasks[0].State[1].StateHandle); a != "second state" {
		t.Fatalf("savepoint state %q", a)
	}
	if err := snapshot.DisposeSavepoint(ctx, sp.Dir); err != nil {
		t.Fatal(err)
	}

	// A late acknowledgement's state, then the checkpoint itself.
	late := write(t, tm, "late", "too late")
	if err := snapshot.DisposeState(ctx, loc.Path(), []snapshot.StateObject{{Kind: snapshot.KindOperator, StateHandle: late}}); err != nil {
		t.Fatal(err)
	}
	if err := loc.Dispose(ctx); err != nil {
		t.Fatal(err)
	}
	if got := srv.Objects(srv.Bucket, ""); len(got) != 0 {
		t.Fatalf("left %q", got)
	}
}

func sameSet(a, b []string) bool {
	x, y := append([]string(nil), a...), append([]string(nil), b...)
	if len(x) != len(y) {
		return false
	}
	seen := map[string]int{}
	for _, s := range x {
		seen[s]++
	}
	for _, s := range y {
		seen[s]--
	}
	for _, n := range seen {
		if n != 0 {
			return false
		}
	}
	return true
}

// counting counts the requests that reach it and the transport errors
// they met.
type counting struct {
	requests, failed atomic.Int64
}

func (c *counting) RoundTrip(r *http.Request) (*http.Response, error) {
	c.requests.Add(1)
	resp, err := http.DefaultTransport.RoundTrip(r)
	if err != nil {
		c.failed.Add(1)
	}
	return resp, err
}

// A store that is down and comes back within the checkpoint's deadline
// costs retries, not the checkpoint.
func TestRetriesUntilTheStoreIsBack(t *testing.T) {
	srv := miniotest.Start(t)
	c := driverConfig(srv)
	tr := &counting{}
	c.Transport = tr
	register(t, c)
	loc, _ := open(t, "s3://"+srv.Bucket+"/cp").CheckpointLocation("job1", 1)
	h := write(t, loc, "op", "state")

	srv.Stop()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := loc.WriteMetadata(ctx, metadata("job1", 1, false, h))
		done <- err
	}()
	for tr.failed.Load() < 3 {
		select {
		case err := <-done:
			t.Fatalf("WriteMetadata returned while the store was down: %v", err)
		case <-time.After(10 * time.Millisecond):
		}
	}
	srv.Restart()
	if err := <-done; err != nil {
		t.Fatalf("WriteMetadata after the store came back: %v", err)
	}
	if _, err := snapshot.LoadMetadata(t.Context(), loc.Path()); err != nil {
		t.Fatal(err)
	}
}

// A store that stays down past the deadline fails the request with an
// error naming the bucket, the key and the cause.
func TestRetriesGiveUpAtTheDeadline(t *testing.T) {
	srv := miniotest.Start(t)
	register(t, driverConfig(srv))
	loc, _ := open(t, "s3://"+srv.Bucket+"/cp").CheckpointLocation("job1", 1)
	srv.Stop()
	ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
	defer cancel()
	_, err := loc.WriteMetadata(ctx, metadata("job1", 1, false))
	re := `^write _metadata of s3://` + srv.Bucket + `/cp/job1/chk-1: s3 put s3://` + srv.Bucket + `/cp/job1/chk-1/_metadata: ` +
		`dial tcp 127\.0\.0\.1:\d+: connect: connection refused \(endpoint 127\.0\.0\.1:\d+\); gave up after \d+ attempts within the deadline$`
	if err == nil || !regexp.MustCompile(re).MatchString(err.Error()) {
		t.Fatalf("err = %v\nwant %s", err, re)
	}
	var e *s3.Error
	if !errors.As(err, &e) || e.Bucket != srv.Bucket || e.Attempts < 2 || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("error %#v", e)
	}
}

// throttling answers the first n requests (all, if n < 0) with 503
// SlowDown, as S3 does under load, then passes requests on.
type throttling struct {
	n        int64
	requests atomic.Int64
}

func (th *throttling) RoundTrip(r *http.Request) (*http.Response, error) {
	if i := th.requests.Add(1); th.n < 0 || i <= th.n {
		if r.Body != nil {
			_ = r.Body.Close()
		}
		body := `<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>`
		return &http.Response{StatusCode: 503, Status: "503 Service Unavailable", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
			Header: http.Header{"Content-Type": {"application/xml"}}, Body: io.NopCloser(strings.NewReader(body)),
			ContentLength: int64(len(body)), Request: r}, nil
	}
	return http.DefaultTransport.RoundTrip(r)
}

// Throttling is retried with backoff; throttling that lasts past the
// deadline fails with the S3 error code and the bucket. A client error
// (a missing bucket) is not retried.
func TestThrottlingIsRetried(t *testing.T) {
	srv := miniotest.Start(t)
	c := driverConfig(srv)
	th := &throttling{n: 3}
	c.Transport = th
	register(t, c)
	s := open(t, "s3://"+srv.Bucket+"/cp")
	loc, _ := s.CheckpointLocation("job1", 1)
	if _, err := loc.WriteMetadata(t.Context(), metadata("job1", 1, false)); err != nil {
		t.Fatal(err)
	}
	if got := th.requests.Load(); got != 4 {
		t.Fatalf("%d requests, want 4 (3 throttled)", got)
	}

	c.Transport = &throttling{n: -1}
	register(t, c)
	loc, _ = open(t, "s3://"+srv.Bucket+"/cp").CheckpointLocation("job1", 2)
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	_, err := loc.WriteMetadata(ctx, metadata("job1", 2, false))
	re := `^write _metadata of s3://` + srv.Bucket + `/cp/job1/chk-2: s3 put s3://` + srv.Bucket + `/cp/job1/chk-2/_metadata: ` +
		`SlowDown: Please reduce your request rate\. \(HTTP 503\); gave up after \d+ attempts within the deadline$`
	if err == nil || !regexp.MustCompile(re).MatchString(err.Error()) {
		t.Fatalf("err = %v\nwant %s", err, re)
	}

	register(t, driverConfig(srv))
	err = open(t, "s3://no-such-bucket/cp").Validate(t.Context(), "job1")
	re = `^checkpoint directory s3://no-such-bucket/cp/job1 is not usable: s3 put s3://no-such-bucket/cp/job1/\.weir-probe-[0-9a-f]{16}: ` +
		`NoSuchBucket: The specified bucket does not exist \(HTTP 404\)$`
	if err == nil || !regexp.MustCompile(re).MatchString(err.Error()) {
		t.Fatalf("err = %v\nwant %s", err, re)
	}
}

// Credentials never appear in an error or in a printed configuration.
func TestCredentialsNeverShown(t *testing.T) {
	srv := miniotest.Start(t)
	c := driverConfig(srv)
	c.SecretKey = "wrong-" + s3.Secret(srv.SecretKey)
	for _, s := range []string{fmt.Sprint(c), fmt.Sprintf("%+v", c), fmt.Sprintf("%#v", c), mustJSON(t, c)} {
		if strings.Contains(s, srv.SecretKey) || strings.Contains(s, srv.AccessKey) {
			t.Fatalf("configuration printed with a credential: %s", s)
		}
	}
	register(t, c)
	err := open(t, "s3://"+srv.Bucket+"/cp").Validate(t.Context(), "job1")
	if err == nil || !strings.Contains(err.Error(), "SignatureDoesNotMatch") || strings.Contains(err.Error(), srv.SecretKey) {
		t.Fatalf("wrong secret: %v", err)
	}
	_, err = snapshot.Open("s3://weir:"+srv.SecretKey+"@"+srv.Bucket+"/cp", nil)
	if want := "checkpoint storage: s3 URIs must not hold credentials (s3://user:secret@bucket): set s3.access-key and s3.secret-key in the daemons' configuration"; err == nil || err.Error() != want {
		t.Fatalf("credentials in a URI: %v\nwant %s", err, want)
	}
}

func mustJSON(t *testing.T, v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// The driver reads Flink's keys (and their older names); without keys it
// takes credentials from the standard chain (here the environment).
func TestConfiguration(t *testing.T) {
	cfg, _, err := config.FromMap(map[string]string{
		"s3.endpoint": "http://127.0.0.1:9000", "s3.access.key": "ak", "s3.secret-key": "sk", "s3.region": "eu-west-1",
		"s3.path.style.access": "true", "s3.entropy.key": "_entropy_",
	})
	if err != nil {
		t.Fatal(err)
	}
	want := s3.Config{Endpoint: "http://127.0.0.1:9000", AccessKey: "ak", SecretKey: "sk", Region: "eu-west-1", PathStyle: true, EntropyKey: "_entropy_", EntropyLength: 4}
	if got := s3.ConfigFrom(cfg); !reflect.DeepEqual(got, want) {
		t.Fatalf("ConfigFrom = %#v\nwant %#v", got, want)
	}
	for _, c := range []struct {
		c    s3.Config
		want string
	}{
		{s3.Config{AccessKey: "ak"}, "s3: set both s3.access-key and s3.secret-key, or neither (to use AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, ~/.aws/credentials or the instance's IAM role)"},
		{s3.Config{Endpoint: "ftp://host"}, `s3: invalid s3.endpoint "ftp://host": want host[:port], http://host[:port] or https://host[:port]`},
		{s3.Config{Endpoint: "https://user:pw@host"}, "s3: s3.endpoint must not hold credentials: set s3.access-key and s3.secret-key"},
		{s3.Config{EntropyKey: "a/b", EntropyLength: 4}, `s3: s3.entropy.key "a/b" must be a single path segment`},
	} {
		if _, err := s3.New(c.c); err == nil || err.Error() != c.want {
			t.Errorf("New(%v) = %v\nwant %s", c.c, err, c.want)
		}
	}

	srv := miniotest.Start(t)
	t.Setenv("AWS_ACCESS_KEY_ID", srv.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", srv.SecretKey)
	cfg, _, err = config.FromMap(map[string]string{"s3.endpoint": srv.URL, "s3.path-style-access": "true", "s3.region": "us-east-1"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s3.Register(cfg); err != nil {
		t.Fatal(err)
	}
	if err := open(t, "s3://"+srv.Bucket+"/cp").Validate(t.Context(), "job1"); err != nil {
		t.Fatal(err)
	}
}

// Reading from an offset is a ranged GET, also at the very end.
func TestOpenAtOffsets(t *testing.T) {
	srv := miniotest.Start(t)
	register(t, driverConfig(srv))
	loc, _ := open(t, "s3://"+srv.Bucket+"/cp").CheckpointLocation("job1", 1)
	w, _ := loc.CreateStateFile(t.Context(), "kg")
	kw := snapshot.NewKeyGroupWriter(w, stateRange(0, 1))
	_ = kw.StartKeyGroup(0)
	_, _ = kw.Write([]byte("abc"))
	_ = kw.StartKeyGroup(1) // empty, at the end of the object
	o, err := kw.Close()
	if err != nil {
		t.Fatal(err)
	}
	rc, err := snapshot.OpenKeyGroups(t.Context(), loc.Path(), o, stateRange(1, 1))
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(rc)
	_ = rc.Close()
	if err != nil || len(b) != 0 {
		t.Fatalf("read %q, %v", b, err)
	}
}

func stateRange(start, end int) state.KeyGroupRange {
	return state.KeyGroupRange{Start: start, End: end}
}
