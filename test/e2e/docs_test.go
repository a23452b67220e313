package e2e

// TestDocs keeps docs/*.md and examples/ true: it runs what they show
// against a real cluster (a JobManager and two TaskManagers, as processes).
//
// Jobs. Every ```yaml or ```json block of docs/*.md whose top level has
// `name` and a non-empty `operators` list is a weir job, and so is every
// examples/**/*.yaml. Other blocks (configuration fragments, a job cut
// short with `operators: # ...`) are not jobs. Each job is submitted with
// `weir run`, so the JobManager validates all of it (types, properties,
// expressions, graph, config). Before that its file-sink paths and
// execution.checkpointing.dir / savepoint-dir are moved into the test's
// directory (the docs name /tmp and /var paths), and relative paths resolve
// against the repository (the TaskManagers run in a directory where
// examples/ links to it). A job whose sources are all small and bounded
// (sequence keys x count <= 10^6, nexmark events <= 10^6, file-source
// without monitor-interval) must run to FINISHED; any other must reach
// RUNNING, and is then canceled.
//
// CLI examples. A ```console block right after a line `<!-- doc-test -->`
// is run: each `$ weir ...` line (a trailing `\` continues it) is a command,
// the lines after it up to the next `$` its expected output (stdout and
// stderr together, as a terminal shows them); it must exit 0, or, when a
// line of that output starts with `weir: ` (an error example), with an
// error. The marked
// blocks of a page run in page order and share bindings:
//
//   - a 32-hex job id a command names that is not bound yet starts the
//     fixture job (an unbounded sequence -> aggregate -> file-sink with
//     checkpoints every 300 ms, once a checkpoint completed) and is bound
//     to its id; an unbound `*.yaml` argument is bound to the fixture's file;
//   - an absolute path's first directory (/savepoints) is bound to a
//     directory of the same name under the test's directory;
//   - a job id or absolute path in an expected output line that is not
//     bound yet is bound to what the command printed in its place, so a
//     later command naming it gets the real one.
//
// Output is compared by shape. A line of three or more upper-case words
// (ID  TYPE  STATUS ...) is a table header: it must be printed exactly, up
// to the width of the gaps; each documented row under it must match at
// least one printed row (a live table may have more rows). Every other
// line must match the printed line at the same place, and there must be
// as many. Matching a line: bound ids and paths must be printed as bound;
// other ids, paths, numbers, times and dates (a token that starts with a
// digit) match any token, a size (`1.3 MiB`) any size; all other words
// exactly, runs of spaces as any run of spaces.
//
// Every failing job and block is reported, each as its own subtest named
// file:line, so one broken page does not hide another.
//
// TestDocLinks (no cluster) checks that every relative link of docs/*.md,
// and every ../ path in their text, names a file of the repository, and a
// link's #anchor a heading of its page.

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// repoRoot is the repository, seen from test/e2e.
const repoRoot = "../.."

// docBlock is a fenced block of a markdown file.
type docBlock struct {
	file    string // relative to the repository
	line    int    // of the opening fence
	lang    string
	text    string
	docTest bool // preceded by <!-- doc-test -->
}

func (b docBlock) name() string { return fmt.Sprintf("%s:%d", b.file, b.line) }

// docBlocks returns the fenced blocks of a markdown file (indented fences
// too, as inside list items).
func docBlocks(t *testing.T, rel string) []docBlock {
	data, err := os.ReadFile(filepath.Join(repoRoot, rel))
	if err != nil {
		t.Fatal(err)
	}
	var blocks []docBlock
	lines := strings.Split(string(data), "\n")
	prev := ""
	for i := 0; i < len(lines); i++ {
		trimmed := strings.TrimSpace(lines[i])
		if !strings.HasPrefix(trimmed, "```") {
			if trimmed != "" {
				prev = trimmed
			}
			continue
		}
		indent := len(lines[i]) - len(strings.TrimLeft(lines[i], " "))
		b := docBlock{file: rel, line: i + 1, lang: strings.TrimPrefix(trimmed, "```"), docTest: prev == "<!-- doc-test -->"}
		var body []string
		for i++; i < len(lines) && strings.TrimSpace(lines[i]) != "```"; i++ {
			l := lines[i]
			if len(l)-len(strings.TrimLeft(l, " ")) >= indent {
				l = l[indent:]
			}
			body = append(body, l)
		}
		b.text = strings.Join(body, "\n")
		blocks = append(blocks, b)
		prev = ""
	}
	return blocks
}

// docJob is a weir job found in the docs or examples.
type docJob struct {
	name string // file:line, or the example's path
	spec map[string]any
}

func findDocJobs(t *testing.T) []docJob {
	var jobs []docJob
	pages, _ := filepath.Glob(filepath.Join(repoRoot, "docs", "*.md"))
	for _, p := range pages {
		rel, _ := filepath.Rel(repoRoot, p)
		for _, b := range docBlocks(t, rel) {
			if b.lang != "yaml" && b.lang != "json" {
				continue
			}
			var spec map[string]any
			if yaml.Unmarshal([]byte(b.text), &spec) != nil || !isJob(spec) {
				continue
			}
			jobs = append(jobs, docJob{name: b.name(), spec: spec})
		}
	}
	err := filepath.WalkDir(filepath.Join(repoRoot, "examples"), func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".yaml") {
			return err
		}
		rel, _ := filepath.Rel(repoRoot, p)
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		var spec map[string]any
		if err := yaml.Unmarshal(data, &spec); err != nil || !isJob(spec) {
			t.Errorf("%s: not a weir job (a name and operators): %v", rel, err)
			return nil
		}
		jobs = append(jobs, docJob{name: rel, spec: spec})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return jobs
}

func isJob(spec map[string]any) bool {
	ops, _ := spec["operators"].([]any)
	_, named := spec["name"]
	return named && len(ops) > 0
}

// prepareJob moves the job's output and checkpoint paths into dir and
// reports whether it is small and bounded.
func prepareJob(spec map[string]any, dir string) (bounded bool) {
	bounded = true
	if cfg, ok := spec["config"].(map[string]any); ok {
		for k := range cfg {
			switch k {
			case "execution.checkpointing.dir", "state.checkpoints.dir":
				cfg[k] = filepath.Join(dir, "checkpoints")
			case "execution.checkpointing.savepoint-dir", "state.savepoints.dir":
				cfg[k] = filepath.Join(dir, "savepoints")
			}
		}
	}
	for i, o := range spec["operators"].([]any) {
		op, _ := o.(map[string]any)
		props, _ := op["properties"].(map[string]any)
		if props == nil {
			props = map[string]any{}
		}
		num := func(k string) float64 {
			f, _ := strconv.ParseFloat(fmt.Sprint(props[k]), 64)
			return f
		}
		switch op["type"] {
		case "file-sink":
			props["path"] = filepath.Join(dir, fmt.Sprintf("out-%d", i))
		case "sequence":
			bounded = bounded && num("count") > 0 && num("keys")*num("count") <= 1e6
		case "nexmark":
			bounded = bounded && num("events") > 0 && num("events") <= 1e6
		case "file-source":
			_, monitored := props["monitor-interval"]
			bounded = bounded && !monitored
		}
	}
	return bounded
}

// weirCombined runs the CLI with stdout and stderr into one buffer, in the
// order written, and a deadline.
func (c *cluster) weirCombined(timeout time.Duration, args ...string) (string, int) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, "weir"), args...)
	cmd.Dir = c.dir
	cmd.Env = append(os.Environ(), "WEIR_JOBMANAGER="+c.jmAddr)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if ctx.Err() != nil {
		return out.String() + fmt.Sprintf("\n(killed after %v)", timeout), -1
	}
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			return out.String(), ee.ExitCode()
		}
		c.t.Fatalf("weir %v: %v", args, err)
	}
	return out.String(), 0
}

func TestDocs(t *testing.T) {
	c := newCluster(t, 2, 4)
	// Relative paths of the examples (examples/data/words) resolve in the
	// TaskManagers' working directory.
	abs, _ := filepath.Abs(filepath.Join(repoRoot, "examples"))
	if err := os.Symlink(abs, filepath.Join(c.dir, "examples")); err != nil {
		t.Fatal(err)
	}

	jobs := findDocJobs(t)
	if len(jobs) < 5 {
		t.Errorf("found %d jobs in docs/ and examples/, want at least 5: is the job detection broken?", len(jobs))
	}
	for i, j := range jobs {
		t.Run("job "+j.name, func(t *testing.T) {
			dir := filepath.Join(c.dir, fmt.Sprintf("job-%d", i))
			bounded := prepareJob(j.spec, dir)
			data, err := yaml.Marshal(j.spec)
			if err != nil {
				t.Fatal(err)
			}
			file := c.writeJob(fmt.Sprintf("job-%d.yaml", i), string(data))
			if bounded {
				out, code := c.weirCombined(60*time.Second, "run", file)
				if code != 0 {
					t.Errorf("%s: `weir run` of this small bounded job: exit %d, want 0 (FINISHED)\n%s\njob as run:\n%s", j.name, code, out, data)
				}
				return
			}
			out, code := c.weirCombined(30*time.Second, "run", "-d", file)
			if code != 0 {
				t.Errorf("%s: `weir run -d`: exit %d\n%s\njob as submitted:\n%s", j.name, code, out, data)
				return
			}
			id := strings.TrimSpace(out)
			c.waitState(id, 30*time.Second, "RUNNING")
			c.mustWeir("cancel", id)
			c.waitState(id, 30*time.Second, "CANCELED")
		})
	}

	pages, _ := filepath.Glob(filepath.Join(repoRoot, "docs", "*.md"))
	marked := 0
	for _, p := range pages {
		rel, _ := filepath.Rel(repoRoot, p)
		var blocks []docBlock
		for _, b := range docBlocks(t, rel) {
			if b.docTest {
				blocks = append(blocks, b)
			}
		}
		if len(blocks) == 0 {
			continue
		}
		marked += len(blocks)
		s := &docSession{c: c, dir: filepath.Join(c.dir, "doc-"+strings.TrimSuffix(filepath.Base(rel), ".md")), bound: map[string]string{}}
		for _, b := range blocks {
			t.Run("cli "+b.name(), func(t *testing.T) { s.run(t, b) })
		}
	}
	if marked == 0 {
		t.Error("no <!-- doc-test --> block in docs/*.md: is the marker detection broken?")
	}
}

// docSession runs the doc-test blocks of one page.
type docSession struct {
	c       *cluster
	dir     string
	bound   map[string]string // doc token -> real value (job ids, paths, path roots, job files)
	fixture string            // the fixture's job file, once started
}

var (
	jobIDRe = regexp.MustCompile(`^[0-9a-f]{32}$`)
	// varRe finds the variable parts of a documented output line: job ids,
	// absolute paths, sizes, and tokens that start with a digit.
	varRe  = regexp.MustCompile(`\b[0-9a-f]{32}\b|(?:file://)?/[\w.\-/]*\w|\b\d+(?:\.\d+)? (?:B|KiB|MiB|GiB|TiB)\b|\b\d[\w.:\-]*`)
	sizeRe = regexp.MustCompile(`^\d+(?:\.\d+)? (?:B|KiB|MiB|GiB|TiB)$`)
	header = regexp.MustCompile(`^[A-Z][A-Z-]*(?:\s+[A-Z][A-Z-]*){2,}$`)
)

func (s *docSession) run(t *testing.T, b docBlock) {
	if b.lang != "console" {
		t.Errorf("%s: a <!-- doc-test --> block must be ```console, is %q", b.name(), b.lang)
		return
	}
	type step struct {
		cmd  string
		want []string
	}
	var steps []step
	lines := strings.Split(b.text, "\n")
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		if strings.HasPrefix(l, "$ ") {
			cmd := strings.TrimPrefix(l, "$ ")
			for strings.HasSuffix(cmd, `\`) && i+1 < len(lines) {
				i++
				cmd = strings.TrimSuffix(cmd, `\`) + " " + strings.TrimSpace(lines[i])
			}
			steps = append(steps, step{cmd: cmd})
			continue
		}
		if len(steps) == 0 {
			t.Errorf("%s: output line before any `$ weir` command: %q", b.name(), l)
			return
		}
		steps[len(steps)-1].want = append(steps[len(steps)-1].want, l)
	}
	for _, st := range steps {
		args := strings.Fields(st.cmd)
		if len(args) == 0 || args[0] != "weir" {
			t.Errorf("%s: only `$ weir ...` commands can be doc-tested: %q", b.name(), st.cmd)
			return
		}
		if strings.ContainsAny(st.cmd, `"'$|;&<>`) {
			t.Errorf("%s: quoting, variables and pipes are not supported in doc-tested commands: %q", b.name(), st.cmd)
			return
		}
		args = args[1:]
		for i, a := range args {
			args[i] = s.substitute(t, a)
		}
		got, code := s.c.weirCombined(2*time.Minute, args...)
		wantErr := slices.ContainsFunc(st.want, func(l string) bool { return strings.HasPrefix(l, "weir: ") })
		if (code != 0) != wantErr || code < 0 {
			t.Errorf("%s: `%s` (run as weir %s): exit %d, want %s\n%s", b.name(), st.cmd, strings.Join(args, " "), code,
				map[bool]string{false: "0", true: "an error (the docs show one)"}[wantErr], got)
			return
		}
		if msg := s.match(st.want, strings.Split(strings.TrimRight(got, "\n"), "\n")); msg != "" {
			t.Errorf("%s: `%s`: %s\ndocumented:\n%s\nprinted:\n%s", b.name(), st.cmd, msg, strings.Join(st.want, "\n"), got)
			return
		}
	}
}

// substitute returns the real value for one argument of a documented command.
func (s *docSession) substitute(t *testing.T, a string) string {
	if v, ok := s.bound[a]; ok {
		return v
	}
	switch {
	case jobIDRe.MatchString(a):
		s.bound[a] = s.startFixture(t)
		return s.bound[a]
	case strings.HasSuffix(a, ".yaml"):
		if s.fixture == "" {
			s.startFixture(t)
		}
		return s.fixture
	case strings.HasPrefix(a, "/"), strings.HasPrefix(a, "file:///"):
		p := strings.TrimPrefix(a, "file://")
		root := "/" + strings.SplitN(p[1:], "/", 2)[0]
		if _, ok := s.bound[root]; !ok {
			s.bound[root] = filepath.Join(s.dir, root[1:])
		}
		return s.bound[root] + strings.TrimPrefix(p, root)
	}
	return a
}

// startFixture starts the page's fixture job and returns its id once a
// checkpoint of it completed.
func (s *docSession) startFixture(t *testing.T) string {
	c := s.c
	s.fixture = keyedJob{
		name: filepath.Base(s.dir), config: []string{
			"execution.checkpointing.interval: 300ms",
			fmt.Sprintf("execution.checkpointing.dir: %q", filepath.Join(s.dir, "checkpoints")),
		},
		keys: 16, rate: 200, out: filepath.Join(s.dir, "out"),
	}.write(c)
	id := strings.TrimSpace(c.mustWeir("run", "-d", s.fixture))
	c.waitState(id, 30*time.Second, "RUNNING")
	waitFor(t, 30*time.Second, "a completed checkpoint of the fixture job", func() bool {
		return completed(c.checkpoints(id)) > 0
	})
	return id
}

// linePattern turns a documented output line into a regexp; binds lists,
// for each capture group, the doc token it binds.
func (s *docSession) linePattern(doc string) (*regexp.Regexp, []string) {
	var b strings.Builder
	var binds []string
	literal := func(text string) {
		for i, f := range regexp.MustCompile(`\s+`).Split(text, -1) {
			if i > 0 {
				b.WriteString(`\s+`)
			}
			b.WriteString(regexp.QuoteMeta(f))
		}
	}
	last := 0
	for _, m := range varRe.FindAllStringIndex(doc, -1) {
		literal(doc[last:m[0]])
		tok := doc[m[0]:m[1]]
		switch v, ok := s.bound[tok]; {
		case ok:
			b.WriteString(regexp.QuoteMeta(v))
		case sizeRe.MatchString(tok):
			b.WriteString(`\d+(?:\.\d+)? (?:B|KiB|MiB|GiB|TiB)`)
		case jobIDRe.MatchString(tok) || strings.HasPrefix(tok, "/") || strings.HasPrefix(tok, "file://"):
			b.WriteString(`(\S+?)`)
			binds = append(binds, tok)
		default:
			b.WriteString(`\S+?`)
		}
		last = m[1]
	}
	literal(doc[last:])
	return regexp.MustCompile(`^\s*` + b.String() + `\s*$`), binds
}

// match compares printed output with documented output (see the top of
// this file) and binds what the documented lines leave open. It returns
// why they differ, or "".
func (s *docSession) match(want, got []string) string {
	collapse := func(l string) string { return strings.Join(strings.Fields(l), " ") }
	if len(want) == 0 {
		if len(got) == 1 && got[0] == "" {
			return ""
		}
		return "the docs show no output"
	}
	hw := slices.IndexFunc(want, func(l string) bool { return header.MatchString(strings.TrimSpace(l)) })
	before, gotBefore := want, got
	if hw >= 0 {
		hg := slices.IndexFunc(got, func(l string) bool { return collapse(l) == collapse(want[hw]) })
		if hg < 0 {
			return fmt.Sprintf("no printed line is the table header %q", collapse(want[hw]))
		}
		before, gotBefore = want[:hw], got[:hg]
		for _, row := range want[hw+1:] {
			re, _ := s.linePattern(row)
			if !slices.ContainsFunc(got[hg+1:], re.MatchString) {
				return fmt.Sprintf("no printed row has the shape of %q (pattern %s)", row, re)
			}
		}
	}
	if len(before) != len(gotBefore) {
		return fmt.Sprintf("%d lines printed, the docs show %d", len(gotBefore), len(before))
	}
	for i, l := range before {
		re, binds := s.linePattern(l)
		m := re.FindStringSubmatch(gotBefore[i])
		if m == nil {
			return fmt.Sprintf("line %d: %q does not have the shape of %q (pattern %s)", i+1, gotBefore[i], l, re)
		}
		for j, tok := range binds {
			s.bound[tok] = m[j+1]
		}
	}
	return ""
}

// TestDocLinks: every relative link of docs/*.md names a file of the
// repository (and an anchor of a page, a heading of it), so that the docs
// never point outside the repository or at a page that moved.
func TestDocLinks(t *testing.T) {
	link := regexp.MustCompile(`\]\(([^)\s]+)\)`)
	upPath := regexp.MustCompile(`(?:^|[\s(\x60])((?:\.\./)+[\w.\-/]*\w)`)
	root, _ := filepath.Abs(repoRoot)
	pages, _ := filepath.Glob(filepath.Join(repoRoot, "docs", "*.md"))
	for _, p := range pages {
		rel, _ := filepath.Rel(repoRoot, p)
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		for i, line := range strings.Split(string(data), "\n") {
			// A path up and out of docs/ in the text, not as a link, must
			// name a file of the repository too.
			for _, m := range upPath.FindAllStringSubmatchIndex(line, -1) {
				if strings.HasSuffix(line[:m[2]], "](") {
					continue // a link: checked below
				}
				up := line[m[2]:m[3]]
				dest, _ := filepath.Abs(filepath.Join(filepath.Dir(p), up))
				r, err := filepath.Rel(root, dest)
				if _, serr := os.Stat(dest); err != nil || strings.HasPrefix(r, "..") || serr != nil {
					t.Errorf("%s:%d: %q is not a file of the repository (copy what it says into docs/reference/)", rel, i+1, up)
				}
			}
			for _, m := range link.FindAllStringSubmatch(line, -1) {
				target := m[1]
				if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
					continue
				}
				file, anchor, _ := strings.Cut(target, "#")
				dest, _ := filepath.Abs(p)
				if file != "" {
					dest, _ = filepath.Abs(filepath.Join(filepath.Dir(p), file))
				}
				if r, err := filepath.Rel(root, dest); err != nil || strings.HasPrefix(r, "..") {
					t.Errorf("%s:%d: link %q points outside the repository", rel, i+1, target)
					continue
				}
				st, err := os.Stat(dest)
				if err != nil {
					t.Errorf("%s:%d: link %q: %v", rel, i+1, target, err)
					continue
				}
				if anchor != "" && !st.IsDir() && strings.HasSuffix(dest, ".md") && !hasAnchor(t, dest, anchor) {
					t.Errorf("%s:%d: link %q: no heading of %s has the anchor #%s", rel, i+1, target, filepath.Base(dest), anchor)
				}
			}
		}
	}
}

// hasAnchor reports whether a heading of the markdown file has GitHub's
// anchor: lower case, spaces to hyphens, punctuation other than - and _
// dropped.
func hasAnchor(t *testing.T, path, anchor string) bool {
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	inFence := false
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "```") {
			inFence = !inFence
		}
		if inFence || !strings.HasPrefix(line, "#") {
			continue
		}
		h := strings.ToLower(strings.TrimSpace(strings.TrimLeft(line, "#")))
		var b strings.Builder
		for _, r := range h {
			switch {
			case r == ' ':
				b.WriteRune('-')
			case r == '-' || r == '_' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r > 127:
				b.WriteRune(r)
			}
		}
		if b.String() == anchor {
			return true
		}
	}
	return false
}
