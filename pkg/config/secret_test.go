package config

import (
	"reflect"
	"strings"
	"testing"
)

// Secrets never leave the process: ToMap (the deployment descriptor) omits
// them, Redacted (any dump) masks them, and errors never echo them.
func TestSecretsAreNeverShown(t *testing.T) {
	c, _, err := FromMap(map[string]string{
		"s3.access-key": "AKIAEXAMPLE", "s3.secret.key": "very-secret", "s3.endpoint": "http://127.0.0.1:9000", "parallelism.default": "2",
	})
	if err != nil {
		t.Fatal(err)
	}
	if c.String(S3SecretKey) != "very-secret" || c.String(S3AccessKey) != "AKIAEXAMPLE" {
		t.Fatalf("getters: %q %q", c.String(S3AccessKey), c.String(S3SecretKey))
	}
	if got, want := c.ToMap(), map[string]string{"s3.endpoint": "http://127.0.0.1:9000", "parallelism.default": "2"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("ToMap = %v, want %v", got, want)
	}
	want := map[string]string{"s3.access-key": "******", "s3.secret-key": "******", "s3.endpoint": "http://127.0.0.1:9000", "parallelism.default": "2"}
	if got := c.Redacted(); !reflect.DeepEqual(got, want) {
		t.Fatalf("Redacted = %v, want %v", got, want)
	}
	// A secret of a type that can be invalid would be named, not shown.
	o := &Option{Key: "x.password", Type: TypeInt, Secret: true}
	if _, err := o.parse("hunter2"); err == nil || err.Error() != `invalid value "******" for key "x.password": want an integer` {
		t.Fatalf("parse: %v", err)
	}
}

// A job's config: may not set cluster options (credentials among them);
// the error names every such key and no value.
func TestWithJobRefusesClusterOptions(t *testing.T) {
	_, _, err := New().WithJob(map[string]string{
		"s3.secret-key": "very-secret", "s3.access.key": "AKIAEXAMPLE", "execution.checkpointing.interval": "1 s",
	})
	want := `s3.access.key is a cluster setting (set it in the config.yaml of the JobManager and the TaskManagers), not a job setting` + "\n" +
		`s3.secret-key is a cluster setting (set it in the config.yaml of the JobManager and the TaskManagers), not a job setting`
	if err == nil || err.Error() != want || strings.Contains(err.Error(), "very-secret") {
		t.Fatalf("err = %v\nwant %s", err, want)
	}
	c, _, err := New().WithJob(map[string]string{"execution.checkpointing.interval": "1 s"})
	if err != nil || !c.IsSet(CheckpointingInterval) {
		t.Fatalf("job options: %v", err)
	}
	for _, o := range Options() {
		if strings.HasPrefix(o.Key, "s3.") && !o.Cluster() {
			t.Errorf("%s is not a cluster option", o.Key)
		}
	}
}
