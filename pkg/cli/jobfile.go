package cli

// What `weir run` and `weir info` do to a job file before the JobManager
// sees it: -p and the job's -D keys are written into the file (its
// parallelism field and its config: section), so that the JobManager, its
// HA store and a recovering JobManager all see one file that says what the
// job runs with, and nothing in the API changes. The file is validated
// here, as the JobManager would, before and after: errors in the file name
// its lines as the user wrote them, errors of the flags name the flag.

import (
	"bytes"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"

	"github.com/weirstream/weir/pkg/config"
	"github.com/weirstream/weir/pkg/jobgraph"
	"github.com/weirstream/weir/pkg/restart"
)

// addParallelismFlag gives run and info their -p/--parallelism flag.
func addParallelismFlag(cmd *cobra.Command, p *int) {
	cmd.Flags().VarP((*parallelismFlag)(p), "parallelism", "p",
		"the job's default parallelism, for operators that set none (overrides the job file's parallelism field)")
}

// parallelismFlag is -p: 1 to jobgraph.MaxParallelism, checked while flags
// are parsed; 0 is "not given".
type parallelismFlag int

func (p *parallelismFlag) String() string {
	if *p == 0 {
		return ""
	}
	return strconv.Itoa(int(*p))
}
func (p *parallelismFlag) Type() string { return "N" }
func (p *parallelismFlag) Set(s string) error {
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > jobgraph.MaxParallelism {
		return fmt.Errorf("want a number from 1 to %d", jobgraph.MaxParallelism)
	}
	*p = parallelismFlag(n)
	return nil
}

// jobOverrides are the -D keys that configure the job on run and info:
// every key but the cluster settings (config.Option.Scope), which
// configure weir itself (high-availability.*, security.ssl.*, s3.*,
// jobmanager.rpc.*) and which a job may not set anyway.
func (a *app) jobOverrides() (map[string]string, error) {
	all, err := config.ParseOverrides(a.overrides)
	if err != nil {
		return nil, failf("%v", err) // as config() says it
	}
	job := map[string]string{}
	for k, v := range all {
		if o, ok := config.Lookup(k); ok && o.Cluster() {
			continue
		}
		job[k] = v
	}
	return job, nil
}

// overridesText says which flags changed the file, for messages.
func overridesText(parallelism int, conf map[string]string) string {
	var parts []string
	if parallelism > 0 {
		parts = append(parts, "-p "+strconv.Itoa(parallelism))
	}
	keys := make([]string, 0, len(conf))
	for k := range conf {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		parts = append(parts, "-D "+k+"="+conf[k])
	}
	return strings.Join(parts, " ")
}

// withOverrides returns the job file with -p and the job's -D keys written
// in, checked as the JobManager will check it; spec as is without them.
func (a *app) withOverrides(path string, spec []byte, parallelism int) ([]byte, error) {
	conf, err := a.jobOverrides()
	if err != nil {
		return nil, err
	}
	if parallelism == 0 && len(conf) == 0 {
		return spec, nil
	}
	cfg, err := a.config()
	if err != nil {
		return nil, err
	}
	// The file as written first, so that its errors name its own lines.
	if _, _, _, err := parseJob(cfg, path, spec); err != nil {
		return nil, failf("%v", err)
	}
	if len(conf) > 0 {
		if _, _, err := cfg.WithJob(conf); err != nil {
			return nil, failf("-D: %v", firstError(err))
		}
	}
	out, err := rewriteJobFile(spec, parallelism, conf)
	if err != nil {
		return nil, failf("%s: cannot apply %s: %v", path, overridesText(parallelism, conf), err)
	}
	if len(out) > config.MaxJobFileSize {
		return nil, failf("job file %s with %s is %d bytes: the limit is %s (%d bytes)",
			path, overridesText(parallelism, conf), len(out), humanSize(config.MaxJobFileSize), config.MaxJobFileSize)
	}
	if _, _, _, err := parseJob(cfg, path, out); err != nil {
		return nil, failf("with %s: %v", overridesText(parallelism, conf), err)
	}
	return out, nil
}

// parseJob validates a job file as the JobManager does at submission
// (jobmanager.prepareJob), with cfg as the cluster's configuration: it
// parses the file, applies its config: over cfg and builds its restart
// strategy. Errors and warnings (unknown keys in its config:) read as the
// JobManager's. What needs the cluster's machines (io.allowed-paths, the
// checkpoint directory) is left to it.
func parseJob(cfg *config.Config, path string, spec []byte) (*jobgraph.JobGraph, *config.Config, []string, error) {
	g, warnings, err := jobgraph.ParseWithOptions(spec, path, jobgraph.ParseOptions{
		DefaultParallelism:    cfg.Int(config.Parallelism),
		DefaultMaxParallelism: cfg.Int(config.MaxParallelism),
	})
	if err != nil {
		return nil, nil, nil, err
	}
	eff, _, err := cfg.WithJob(g.Config)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("%s: config: %w", path, firstError(err))
	}
	if _, err := restart.FromConfig(eff, eff.IsSet(config.CheckpointingInterval), nil); err != nil {
		return nil, nil, nil, err
	}
	return g, eff, warnings, nil
}

// firstError is the first of joined errors: one error at a time, as
// everywhere in a job file.
func firstError(err error) error {
	var multi interface{ Unwrap() []error }
	if errors.As(err, &multi) && len(multi.Unwrap()) > 0 {
		return multi.Unwrap()[0]
	}
	return err
}

// rewriteJobFile sets the parallelism field (if parallelism > 0) and the
// keys of conf in the config: section of a job file (YAML, or JSON, which
// is YAML). The config: section is written flat (dotted keys, sorted),
// with conf's values over the file's; everything else keeps its order and
// comments. The result is YAML.
func rewriteJobFile(spec []byte, parallelism int, conf map[string]string) ([]byte, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(spec, &doc); err != nil {
		return nil, err
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, errors.New("not a mapping")
	}
	root := doc.Content[0]
	if parallelism > 0 {
		setField(root, "parallelism", &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: strconv.Itoa(parallelism)})
	}
	if len(conf) > 0 {
		flat := map[string]string{}
		if i := fieldIndex(root, "config"); i >= 0 {
			var err error
			if flat, err = config.FlattenNode(root.Content[i+1]); err != nil {
				return nil, fmt.Errorf("config: %w", err)
			}
		}
		for k, v := range conf {
			flat[k] = v
		}
		m := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
		keys := make([]string, 0, len(flat))
		for k := range flat {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			m.Content = append(m.Content,
				&yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: k},
				&yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: flat[k]})
		}
		setField(root, "config", m)
	}
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// fieldIndex is the index of key's key node in mapping m, or -1.
func fieldIndex(m *yaml.Node, key string) int {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if k := m.Content[i]; k.Kind == yaml.ScalarNode && k.Value == key {
			return i
		}
	}
	return -1
}

// setField replaces the value of key in mapping m, or appends key.
func setField(m *yaml.Node, key string, v *yaml.Node) {
	if i := fieldIndex(m, key); i >= 0 {
		v.LineComment = m.Content[i+1].LineComment
		m.Content[i+1] = v
		return
	}
	m.Content = append(m.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: key}, v)
}

// localPath makes a relative local path absolute, against weir's working
// directory: the JobManager would resolve it against its own, and find
// nothing there. A URI (file:///..., s3://...) and an absolute path are
// returned as they are; so is "".
func localPath(p string) (string, error) {
	if p == "" || config.IsAbsolutePathOrURI(p) || hasScheme(p) {
		return p, nil
	}
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", failf("cannot make %q absolute: %v", p, err)
	}
	return abs, nil
}

// hasScheme reports whether p starts with a URI scheme ("s3:", "file:").
func hasScheme(p string) bool {
	u, err := url.Parse(p)
	return err == nil && u.Scheme != "" && len(u.Scheme) > 1
}
