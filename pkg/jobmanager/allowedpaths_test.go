package jobmanager

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/weirstream/weir/proto/weirpb"
)

// fileJob reads src and writes sink, with cfg as its config: section.
func fileJob(src, sink, cfg string) string {
	return "name: files\nconfig: {" + cfg + "}\noperators:\n" +
		"- id: read\n  type: file-source\n  properties: {path: '" + src + "'}\n" +
		"- id: write\n  type: file-sink\n  input: read\n  properties: {path: '" + sink + "'}\n"
}

// TestAllowedPathsAtSubmission: with io.allowed-paths set, a job whose
// file-source, file-sink, checkpoint or savepoint directory lies outside
// (after links and "..") is refused, naming the operator or key and the
// path, and nothing of it is created; one inside is accepted. Savepoint
// targets, the savepoint to start from and dispose paths likewise.
func TestAllowedPathsAtSubmission(t *testing.T) {
	root, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	data, out := filepath.Join(root, "data"), filepath.Join(root, "out")
	for _, d := range []string{data, out} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(out, filepath.Join(data, "link")); err != nil {
		t.Fatal(err)
	}
	c := startJM(t, zap.NewNop(), map[string]string{"io.allowed-paths": data})
	in := data + "/in.txt"
	suffix := " is outside io.allowed-paths (" + data + ")"
	for _, tc := range []struct{ spec, want string }{
		{fileJob("/etc/shadow", data+"/sink", ""),
			`job.yaml: operator "read" (file-source): property "path": path /etc/shadow` + suffix},
		{fileJob(in, data+"/../out/sink", ""),
			`job.yaml: operator "write" (file-sink): property "path": path ` + data + `/../out/sink (resolved to ` + out + `/sink)` + suffix},
		{fileJob(in, data+"/link/sink", ""),
			`job.yaml: operator "write" (file-sink): property "path": path ` + data + `/link/sink (resolved to ` + out + `/sink)` + suffix},
		{fileJob(in, data+"/sink", "execution.checkpointing.interval: 1 s, execution.checkpointing.dir: 'file://"+out+"/chk'"),
			`job.yaml: config: execution.checkpointing.dir: path file://` + out + `/chk` + suffix},
		{fileJob(in, data+"/sink", "execution.checkpointing.savepoint-dir: '"+out+"/sp'"),
			`job.yaml: config: execution.checkpointing.savepoint-dir: path ` + out + `/sp` + suffix},
	} {
		_, err := c.api.SubmitJob(context.Background(), &weirpb.SubmitJobRequest{JobSpec: []byte(tc.spec), FileName: "job.yaml"})
		if s, _ := status.FromError(err); s.Code() != codes.InvalidArgument || s.Message() != tc.want {
			t.Errorf("SubmitJob: %v\nwant InvalidArgument: %s", err, tc.want)
		}
	}
	if entries, err := os.ReadDir(out); err != nil || len(entries) != 0 {
		t.Errorf("refused jobs created %v (%v) in %s", entries, err, out)
	}
	_, err = c.api.SubmitJob(context.Background(), &weirpb.SubmitJobRequest{JobSpec: []byte(fileJob(in, data+"/sink", "")),
		FileName: "job.yaml", FromSavepoint: out + "/savepoint-1"})
	if want := "savepoint to start from: path " + out + "/savepoint-1" + suffix; status.Code(err) != codes.InvalidArgument || status.Convert(err).Message() != want {
		t.Errorf("SubmitJob from a savepoint outside: %v\nwant InvalidArgument: %s", err, want)
	}

	// Inside, with s3:// (no local file) as the savepoint directory.
	ok := fileJob(in, data+"/new/sink", "execution.checkpointing.interval: 1 s, execution.checkpointing.dir: 'file://"+data+"/chk', "+
		"execution.checkpointing.savepoint-dir: 's3://bucket/sp'")
	if _, err := c.api.SubmitJob(context.Background(), &weirpb.SubmitJobRequest{JobSpec: []byte(ok), FileName: "job.yaml"}); err != nil {
		t.Fatalf("SubmitJob inside io.allowed-paths: %v", err)
	}
	jobs, err := c.api.ListJobs(context.Background(), &weirpb.ListJobsRequest{})
	if err != nil || len(jobs.Jobs) != 1 {
		t.Fatalf("ListJobs = %v, %v; want the one accepted job", jobs, err)
	}

	const noJob = "0123456789abcdef0123456789abcdef"
	want := "savepoint directory: path " + out + "/sp" + suffix
	_, err = c.api.TriggerSavepoint(context.Background(), &weirpb.TriggerSavepointRequest{JobId: noJob, TargetDirectory: out + "/sp"})
	if s, _ := status.FromError(err); s.Code() != codes.InvalidArgument || s.Message() != want {
		t.Errorf("savepoint: %v\nwant InvalidArgument: %s", err, want)
	}
	_, err = c.api.StopJob(context.Background(), &weirpb.StopJobRequest{JobId: noJob, TargetDirectory: out + "/sp"})
	if s, _ := status.FromError(err); s.Code() != codes.InvalidArgument || s.Message() != want {
		t.Errorf("stop with savepoint: %v\nwant InvalidArgument: %s", err, want)
	}
	// Inside, or not a local file: as far as the job.
	for _, target := range []string{data + "/sp", "s3://bucket/sp"} {
		_, err = c.api.TriggerSavepoint(context.Background(), &weirpb.TriggerSavepointRequest{JobId: noJob, TargetDirectory: target})
		if status.Code(err) != codes.NotFound {
			t.Errorf("savepoint to %s: %v, want NotFound (no such job)", target, err)
		}
	}
	want = "dispose savepoint: path file://" + out + "/savepoint-1" + suffix
	_, err = c.api.DisposeSavepoint(context.Background(), &weirpb.DisposeSavepointRequest{Path: "file://" + out + "/savepoint-1"})
	if s, _ := status.FromError(err); s.Code() != codes.InvalidArgument || s.Message() != want {
		t.Errorf("dispose: %v\nwant InvalidArgument: %s", err, want)
	}
}
