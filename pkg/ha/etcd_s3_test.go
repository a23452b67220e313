package ha

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/weirstream/weir/pkg/internal/etcdtest"
	"github.com/weirstream/weir/pkg/internal/miniotest"
	"github.com/weirstream/weir/pkg/snapshot"
	"github.com/weirstream/weir/pkg/snapshot/s3"
)

// With an s3:// storage directory the job files are objects: written,
// read back, replaced and removed with their pointers.
func TestEtcdJobGraphsOnS3(t *testing.T) {
	srv := etcdtest.Start(t)
	mc := miniotest.Start(t)
	d, err := s3.New(s3.Config{
		Endpoint: mc.URL, AccessKey: s3.Secret(mc.AccessKey), SecretKey: s3.Secret(mc.SecretKey),
		Region: "us-east-1", PathStyle: true, MinBackoff: 10 * time.Millisecond, MaxBackoff: 100 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	snapshot.Register(s3.Scheme, d)
	a := newTestEtcd(t, srv, "c", "s3://"+mc.Bucket+"/ha/", "10.0.0.1:6123", 5*time.Second)
	b := newTestEtcd(t, srv, "c", "s3://"+mc.Bucket+"/ha", "10.0.0.2:6123", 5*time.Second)
	ctx := testCtx(t)
	lead(t, a)
	spec := []byte("name: on-s3\n")
	if err := a.PutJobGraph(ctx, JobGraphRecord{JobID: "j", Name: "on-s3", FileName: "j.yaml", Spec: spec}); err != nil {
		t.Fatal(err)
	}
	first := mc.Objects(mc.Bucket, "ha/")
	if len(first) != 1 || !strings.HasPrefix(first[0], "ha/c/jobgraphs/j-") {
		t.Fatalf("objects after PutJobGraph: %v", first)
	}
	// Another JobManager (a standby) reads it.
	g, ok, err := b.JobGraph(ctx, "j")
	if err != nil || !ok || string(g.Spec) != string(spec) || g.FileName != "j.yaml" {
		t.Fatalf("JobGraph from a standby: %+v, %v, %v", g, ok, err)
	}
	if err := a.PutJobGraph(ctx, JobGraphRecord{JobID: "j", Spec: []byte("name: v2\n")}); err != nil {
		t.Fatal(err)
	}
	if second := mc.Objects(mc.Bucket, "ha/"); len(second) != 1 || slices.Equal(second, first) {
		t.Fatalf("objects after a replacement: %v, before %v", second, first)
	}
	if err := mc.Client().RemoveObject(ctx, mc.Bucket, mc.Objects(mc.Bucket, "ha/")[0], minio.RemoveObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := b.JobGraph(ctx, "j"); err == nil || errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "s3://"+mc.Bucket+"/ha/c/jobgraphs/j-") {
		t.Fatalf("JobGraph of a deleted object: %v", err)
	}
	if err := a.PutJobGraph(ctx, JobGraphRecord{JobID: "j", Spec: spec}); err != nil {
		t.Fatal(err)
	}
	if err := a.RemoveJob(ctx, "j"); err != nil {
		t.Fatal(err)
	}
	if objs := mc.Objects(mc.Bucket, "ha/"); len(objs) != 0 {
		t.Fatalf("objects after RemoveJob: %v", objs)
	}
}
