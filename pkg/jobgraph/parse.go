package jobgraph

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"

	"github.com/weirstream/weir/pkg/config"
	"github.com/weirstream/weir/pkg/operator"
)

// Defaults and limits of the job file (docs/jobs.md, "Limits"). The limits
// bound what the JobManager and the TaskManagers do for a job: one
// execution vertex, deployment and checkpoint acknowledgement per subtask,
// one channel per upstream subtask per input.
const (
	DefaultParallelism    = 1
	DefaultMaxParallelism = 128
	// MaxMaxParallelism is Flink's upper bound on the number of key groups.
	MaxMaxParallelism = 32768
	// MaxParallelism bounds the job's and every operator's parallelism;
	// max-parallelism bounds them too, so it is the same number.
	MaxParallelism = MaxMaxParallelism
	// MaxOperators and MaxEdges bound the size of the graph: its operators
	// and their inputs, each input being one edge.
	MaxOperators = 1000
	MaxEdges     = 10_000
	// MaxSubtasks bounds the subtasks of a job: the parallelism of every
	// job vertex (a chain of operators runs as one), added up.
	MaxSubtasks = 100_000
	// MaxChannels bounds the input channels of a job, added up over its
	// edges: a forward edge has one per subtask, an all-to-all edge
	// (rebalance, hash, broadcast) one per pair of subtasks. Channels are
	// what deployment descriptors, connections and network buffers grow
	// with, so a job within MaxSubtasks could still ask for billions
	// (two vertices of 50,000 subtasks joined by a hash edge). 2^20 allows
	// an all-to-all edge between two vertices of parallelism 1024.
	MaxChannels = 1 << 20
	// MaxNameLength bounds the job's name, in bytes.
	MaxNameLength = 256
	maxIDLength   = 64
)

var idPattern = regexp.MustCompile(`^[a-z0-9_-]+$`)

// Fields of the job file, in the order the docs list them.
var (
	jobFields   = []string{"name", "parallelism", "max-parallelism", "config", "operators"}
	opFields    = []string{"id", "type", "parallelism", "input", "properties"}
	inputFields = []string{"from", "partition", "key"}
	partitions  = []string{Forward, Rebalance, Hash, Broadcast}
)

// ParseOptions are the cluster's choices that a job file may override.
//
// The job's parallelism is, first found: the file's parallelism field, the
// parallelism.default of its config:, DefaultParallelism. Its
// max-parallelism likewise: the max-parallelism field, the
// pipeline.max-parallelism of its config:, DefaultMaxParallelism.
type ParseOptions struct {
	// DefaultParallelism is used for a job that sets no parallelism (the
	// cluster's parallelism.default); 0 means DefaultParallelism.
	DefaultParallelism int
	// DefaultMaxParallelism is used for a job that sets no max-parallelism
	// (the cluster's pipeline.max-parallelism); 0 means
	// DefaultMaxParallelism.
	DefaultMaxParallelism int
}

// Parse parses and completely validates a job file (YAML or JSON).
// fileName is used in error messages only. Warnings (unknown config keys)
// are dropped; use ParseWithWarnings to report them.
func Parse(data []byte, fileName string) (*JobGraph, error) {
	g, _, err := ParseWithOptions(data, fileName, ParseOptions{})
	return g, err
}

// ParseWithWarnings is Parse that also returns warnings for the caller to
// show: unknown or deprecated keys in the job's config: section, which do
// not stop a job (a typo should be seen, not be fatal; see package config).
func ParseWithWarnings(data []byte, fileName string) (*JobGraph, []string, error) {
	return ParseWithOptions(data, fileName, ParseOptions{})
}

// ParseWithOptions is ParseWithWarnings with the cluster's defaults.
//
// The first error in file order is returned; every message is prefixed by
// fileName (when not empty) and names the operator and field at fault.
func ParseWithOptions(data []byte, fileName string, opts ParseOptions) (*JobGraph, []string, error) {
	p := &parser{file: fileName, opts: opts}
	g, err := p.parse(data)
	if err != nil {
		return nil, nil, err
	}
	return g, p.warnings, nil
}

type parser struct {
	file     string
	opts     ParseOptions
	warnings []string
}

// opDecl is an operator with what parsing learned about it.
type opDecl struct {
	op      *Operator
	typ     *operator.Type
	line    int
	inputs  []inputDecl
	ordinal int // 1-based position in the file
}

type inputDecl struct {
	partitionSet bool // the file names a partition (else it is derived)
}

func (d *opDecl) String() string { return fmt.Sprintf("operator %q", d.op.ID) }

// typed names the operator and its type, for errors about the type.
func (d *opDecl) typed() string { return fmt.Sprintf("operator %q (%s)", d.op.ID, d.op.Type) }

func (p *parser) errf(format string, args ...any) error {
	if p.file == "" {
		return fmt.Errorf(format, args...)
	}
	return fmt.Errorf("%s: "+format, append([]any{p.file}, args...)...)
}

func (p *parser) parse(data []byte) (*JobGraph, error) {
	root, err := p.document(data)
	if err != nil {
		return nil, err
	}
	fs, err := fields(root)
	if err != nil {
		return nil, p.errf("%v", err)
	}
	g := &JobGraph{MaxParallelism: DefaultMaxParallelism}
	var (
		nameSet, parallelismSet, maxParallelismSet bool
		opsNode                                    *yaml.Node
		opsLine                                    int
		jobCfg                                     *config.Config // the config: section alone
	)
	for _, f := range fs {
		switch f.key {
		case "name":
			if g.Name, err = stringValue("name", f.value); err != nil {
				return nil, p.errf("%v", err)
			}
			nameSet = g.Name != ""
		case "parallelism":
			if g.Parallelism, err = intValue("parallelism", f.value); err != nil {
				return nil, p.errf("%v", err)
			}
			parallelismSet = true
		case "max-parallelism":
			if g.MaxParallelism, err = intValue("max-parallelism", f.value); err != nil {
				return nil, p.errf("%v", err)
			}
			maxParallelismSet = true
		case "config":
			if g.Config, jobCfg, err = p.config(f.value); err != nil {
				return nil, err
			}
		case "operators":
			opsNode, opsLine = resolve(f.value), f.line
		default:
			return nil, p.errf("unknown field %q at line %d (known: %s)", f.key, f.line, strings.Join(jobFields, ", "))
		}
	}
	if !nameSet {
		return nil, p.errf("name is required")
	}
	if err := checkName(g.Name); err != nil {
		return nil, p.errf("%v", err)
	}
	// The fields win over the job's config:, which wins over the cluster's.
	if !maxParallelismSet {
		switch {
		case jobCfg.IsSet(config.MaxParallelism):
			g.MaxParallelism = jobCfg.Int(config.MaxParallelism)
		case p.opts.DefaultMaxParallelism > 0:
			g.MaxParallelism = p.opts.DefaultMaxParallelism
		}
	}
	if g.MaxParallelism < 1 || g.MaxParallelism > MaxMaxParallelism {
		return nil, p.errf("max-parallelism must be between 1 and %d, is %d", MaxMaxParallelism, g.MaxParallelism)
	}
	if !parallelismSet {
		g.Parallelism = DefaultParallelism
		switch {
		case jobCfg.IsSet(config.Parallelism):
			g.Parallelism = jobCfg.Int(config.Parallelism)
			if g.Parallelism > g.MaxParallelism {
				return nil, p.errf("config: %s %d is above max-parallelism %d", config.Parallelism.Key, g.Parallelism, g.MaxParallelism)
			}
		case p.opts.DefaultParallelism > 0:
			g.Parallelism = p.opts.DefaultParallelism
			if g.Parallelism > g.MaxParallelism {
				return nil, p.errf("the cluster's default parallelism %d is above max-parallelism %d: set parallelism or max-parallelism", g.Parallelism, g.MaxParallelism)
			}
		}
	}
	if g.Parallelism < 1 || g.Parallelism > MaxParallelism {
		return nil, p.errf("parallelism must be between 1 and %d, is %d", MaxParallelism, g.Parallelism)
	}
	if g.Parallelism > g.MaxParallelism {
		return nil, p.errf("parallelism %d is above max-parallelism %d", g.Parallelism, g.MaxParallelism)
	}
	if g.Config == nil {
		g.Config = map[string]string{}
	}

	if opsNode == nil || isNull(opsNode) {
		return nil, p.errf("operators is required")
	}
	if opsNode.Kind != yaml.SequenceNode {
		return nil, p.errf("operators: want a list of operators, got %s at line %d", describeNode(opsNode), opsLine)
	}
	if len(opsNode.Content) == 0 {
		return nil, p.errf("operators: the job has no operators, at line %d", opsLine)
	}
	// Bounded before any operator is looked at, so that the work below is.
	if n := len(opsNode.Content); n > MaxOperators {
		return nil, p.errf("operators: the job has %d operators, more than the maximum of %d, at line %d", n, MaxOperators, opsLine)
	}
	if n := countEdges(opsNode); n > MaxEdges {
		return nil, p.errf("operators: the job has %d inputs (edges between operators), more than the maximum of %d, at line %d", n, MaxEdges, opsLine)
	}
	decls := make([]*opDecl, 0, len(opsNode.Content))
	byID := make(map[string]*opDecl, len(opsNode.Content))
	for i, n := range opsNode.Content {
		d, err := p.operator(g, n, i+1, byID)
		if err != nil {
			return nil, err
		}
		byID[d.op.ID] = d
		decls = append(decls, d)
	}
	if err := p.link(decls, byID); err != nil {
		return nil, err
	}
	order, err := p.topological(decls, byID)
	if err != nil {
		return nil, err
	}
	g.Operators = make([]*Operator, len(order))
	for i, d := range order {
		g.Operators[i] = d.op
	}
	subtasks := 0
	vertices := g.Vertices()
	for _, v := range vertices {
		subtasks += v.Parallelism
	}
	if subtasks > MaxSubtasks {
		return nil, p.errf("the job has %d subtasks (the parallelism of its chains of operators, added up), more than the maximum of %d", subtasks, MaxSubtasks)
	}
	if n := countChannels(vertices); n > MaxChannels {
		return nil, p.errf("the job has %d input channels (one per subtask on forward edges, one per pair of subtasks on rebalance, hash and broadcast edges), more than the maximum of %d: lower the parallelism of the operators on either side of its all-to-all edges", n, MaxChannels)
	}
	return g, nil
}

// countChannels counts the input channels of every vertex. The counts are
// bounded by MaxSubtasks squared times the inputs, far from overflowing.
func countChannels(vertices []*JobVertex) int64 {
	var n int64
	for _, v := range vertices {
		for _, in := range v.Inputs {
			if in.Partition == Forward {
				n += int64(v.Parallelism)
			} else {
				n += int64(v.Parallelism) * int64(vertices[in.FromVertex].Parallelism)
			}
		}
	}
	return n
}

// countEdges counts the inputs the operators list, without checking them:
// an input field that is a list counts its items, any other value one.
func countEdges(ops *yaml.Node) int {
	n := 0
	for _, op := range ops.Content {
		op = resolve(op)
		if op.Kind != yaml.MappingNode {
			continue
		}
		for i := 0; i+1 < len(op.Content); i += 2 {
			if k, v := resolve(op.Content[i]), resolve(op.Content[i+1]); k.Value == "input" && !isNull(v) {
				if v.Kind == yaml.SequenceNode {
					n += len(v.Content)
				} else {
					n++
				}
			}
		}
	}
	return n
}

// checkName checks a job name, which is shown by weir list, in logs and in
// metric labels: bounded, and nothing a terminal would act on instead of
// showing (escape sequences, line breaks, text direction overrides).
func checkName(name string) error {
	if len(name) > MaxNameLength {
		return fmt.Errorf("name is %d bytes long, more than the maximum of %d", len(name), MaxNameLength)
	}
	for i, r := range name {
		if r == utf8.RuneError {
			if _, size := utf8.DecodeRuneInString(name[i:]); size == 1 {
				return fmt.Errorf("name %q is not valid UTF-8 (at byte %d)", name, i)
			}
		}
		if unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r) || unicode.In(r, unicode.Zl, unicode.Zp) {
			return fmt.Errorf("name %q: character %U at byte %d is not allowed: a job name must not contain control, line-breaking or text-direction characters", name, r, i)
		}
	}
	return nil
}

// document parses the YAML (or JSON) text into the root mapping node.
func (p *parser) document(data []byte) (*yaml.Node, error) {
	if t := bytes.TrimSpace(data); len(t) > 0 && t[0] == '{' {
		// YAML forbids tabs where JSON's pretty printers put them
		// (indentation). Raw tabs cannot occur inside JSON strings, so
		// turning every tab into a space keeps a valid JSON document intact
		// and its line numbers too.
		data = bytes.ReplaceAll(data, []byte{'\t'}, []byte{' '})
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, p.errf("the job file is empty")
		}
		return nil, p.errf("invalid YAML: %s", syntaxError(err))
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		if err != nil {
			return nil, p.errf("invalid YAML: %s", syntaxError(err))
		}
		return nil, p.errf("a job file holds one YAML document; another starts at line %d", extra.Line)
	}
	if len(doc.Content) == 0 || isNull(doc.Content[0]) {
		return nil, p.errf("the job file is empty")
	}
	root := resolve(doc.Content[0])
	if root.Kind != yaml.MappingNode {
		return nil, p.errf("a job file is a mapping of fields (%s), got %s at line %d", strings.Join(jobFields, ", "), describeNode(root), root.Line)
	}
	return root, nil
}

// syntaxError renders a YAML syntax error with the right line. yaml.v3
// reports the line of parser errors (as opposed to scanner errors) 0-based
// and omits it on the first line; for those problems ("did not find
// expected ...") the line is corrected to 1-based here.
func syntaxError(err error) string {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	line, rest := 0, msg
	if after, ok := strings.CutPrefix(msg, "line "); ok {
		if num, tail, ok := strings.Cut(after, ": "); ok {
			if n, err := strconv.Atoi(num); err == nil {
				line, rest = n, tail
			}
		}
	}
	for _, problem := range []string{"did not find expected", "found duplicate %", "found incompatible YAML document", "found undefined tag handle"} {
		if strings.HasPrefix(rest, problem) {
			return fmt.Sprintf("line %d: %s", line+1, rest)
		}
	}
	return msg
}

// config validates the config: section against the declared options, as
// the JobManager will apply it on top of the cluster's configuration.
func (p *parser) config(n *yaml.Node) (map[string]string, *config.Config, error) {
	flat, err := config.FlattenNode(n)
	if err != nil {
		return nil, nil, p.errf("config: %v", err)
	}
	c, warns, err := config.New().With(flat)
	if err != nil {
		// One error at a time, as everywhere in the job file.
		var multi interface{ Unwrap() []error }
		if errors.As(err, &multi) && len(multi.Unwrap()) > 0 {
			err = multi.Unwrap()[0]
		}
		return nil, nil, p.errf("config: %v", err)
	}
	for _, w := range warns {
		p.warnings = append(p.warnings, p.errf("config: %s", w).Error())
	}
	return flat, c, nil
}

// operator reads one entry of operators: and checks what can be checked
// without the other operators: fields, id, type, parallelism, input syntax
// and properties.
func (p *parser) operator(g *JobGraph, n *yaml.Node, ordinal int, byID map[string]*opDecl) (*opDecl, error) {
	n = resolve(n)
	anon := fmt.Sprintf("operator #%d (line %d)", ordinal, n.Line)
	if n.Kind != yaml.MappingNode {
		return nil, p.errf("%s: want a mapping with fields %s, got %s", anon, strings.Join(opFields, ", "), describeNode(n))
	}
	fs, err := fields(n)
	if err != nil {
		return nil, p.errf("%s: %v", anon, err)
	}
	byName := make(map[string]*yaml.Node, len(fs))
	for _, f := range fs {
		known := false
		for _, k := range opFields {
			known = known || k == f.key
		}
		if !known {
			// Name the operator by id when it has a usable one.
			who := anon
			if v, ok := fieldValue(fs, "id"); ok {
				if id, err := stringValue("id", v); err == nil && validID(id) {
					who = fmt.Sprintf("operator %q", id)
				}
			}
			return nil, p.errf("%s: unknown field %q at line %d (known: %s)", who, f.key, f.line, strings.Join(opFields, ", "))
		}
		byName[f.key] = f.value
	}

	d := &opDecl{op: &Operator{}, line: n.Line, ordinal: ordinal}
	idNode, ok := byName["id"]
	if !ok || isNull(idNode) {
		return nil, p.errf("%s: id is required", anon)
	}
	if d.op.ID, err = stringValue("id", idNode); err != nil {
		return nil, p.errf("%s: %v", anon, err)
	}
	if !validID(d.op.ID) {
		return nil, p.errf("%s: id %s is malformed: want 1 to %d characters of a-z, 0-9, '_' and '-'", anon, clip(d.op.ID), maxIDLength)
	}
	if first, dup := byID[d.op.ID]; dup {
		return nil, p.errf("%s: id is used twice, at lines %d and %d", d, first.line, d.line)
	}

	typeNode, ok := byName["type"]
	if !ok || isNull(typeNode) {
		return nil, p.errf("%s: type is required", d)
	}
	if d.op.Type, err = stringValue("type", typeNode); err != nil {
		return nil, p.errf("%s: %v", d, err)
	}
	if d.typ, ok = operator.Lookup(d.op.Type); !ok {
		return nil, p.errf("%s: unknown type %s (known: %s)", d, clip(d.op.Type), strings.Join(operator.Names(), ", "))
	}

	d.op.Parallelism = g.Parallelism
	if pn, ok := byName["parallelism"]; ok {
		if d.op.Parallelism, err = intValue("parallelism", pn); err != nil {
			return nil, p.errf("%s: %v", d, err)
		}
		if d.op.Parallelism < 1 || d.op.Parallelism > MaxParallelism {
			return nil, p.errf("%s: parallelism must be between 1 and %d, is %d", d, MaxParallelism, d.op.Parallelism)
		}
		if d.op.Parallelism > g.MaxParallelism {
			return nil, p.errf("%s: parallelism %d is above max-parallelism %d", d, d.op.Parallelism, g.MaxParallelism)
		}
	}

	if in, ok := byName["input"]; ok {
		if err := p.inputs(d, in); err != nil {
			return nil, err
		}
	}

	d.op.Properties = operator.Properties{}
	if pn, ok := byName["properties"]; ok {
		if err := p.properties(d, pn); err != nil {
			return nil, err
		}
	}
	if err := p.checkProperties(d); err != nil {
		return nil, err
	}
	return d, nil
}

func fieldValue(fs []field, key string) (*yaml.Node, bool) {
	for _, f := range fs {
		if f.key == key {
			return f.value, true
		}
	}
	return nil, false
}

// clip quotes a value of the file for an error message, shortened when it
// is long: an error must stay readable whatever the file holds.
func clip(s string) string {
	const max = 128
	if len(s) <= max {
		return strconv.Quote(s)
	}
	q := strconv.Quote(s[:max])
	return fmt.Sprintf(`%s..." (%d bytes)`, q[:len(q)-1], len(s))
}

func validID(id string) bool {
	return len(id) >= 1 && len(id) <= maxIDLength && idPattern.MatchString(id)
}

// inputs reads input: an id, a mapping {from, partition, key}, or a list
// of those.
func (p *parser) inputs(d *opDecl, n *yaml.Node) error {
	n = resolve(n)
	if isNull(n) {
		return nil
	}
	items := []*yaml.Node{n}
	if n.Kind == yaml.SequenceNode {
		items = n.Content
	}
	for i, item := range items {
		in, partitionSet, err := p.input(d, item, i+1)
		if err != nil {
			return err
		}
		for _, prev := range d.op.Inputs {
			if prev.From == in.From {
				return p.errf("%s: input %q is listed twice", d, in.From)
			}
		}
		d.op.Inputs = append(d.op.Inputs, in)
		d.inputs = append(d.inputs, inputDecl{partitionSet: partitionSet})
	}
	return nil
}

func (p *parser) input(d *opDecl, n *yaml.Node, ordinal int) (Input, bool, error) {
	n = resolve(n)
	var in Input
	switch n.Kind {
	case yaml.ScalarNode:
		from, err := stringValue("input", n)
		if err != nil {
			return in, false, p.errf("%s: %v", d, err)
		}
		in.From = from
		return in, false, nil
	case yaml.MappingNode:
	default:
		return in, false, p.errf("%s: input: want an operator id or a mapping with fields %s, got %s at line %d",
			d, strings.Join(inputFields, ", "), describeNode(n), n.Line)
	}
	who := fmt.Sprintf("input #%d (line %d)", ordinal, n.Line)
	fs, err := fields(n)
	if err != nil {
		return in, false, p.errf("%s: %s: %v", d, who, err)
	}
	var partitionSet, keySet bool
	for _, f := range fs {
		var err error
		switch f.key {
		case "from":
			in.From, err = stringValue("from", f.value)
		case "partition":
			in.Partition, err = stringValue("partition", f.value)
			partitionSet = true
		case "key":
			in.Key, err = stringValue("key", f.value)
			keySet = true
		default:
			err = fmt.Errorf("unknown field %q at line %d (known: %s)", f.key, f.line, strings.Join(inputFields, ", "))
		}
		if err != nil {
			return in, false, p.errf("%s: %s: %v", d, who, err)
		}
	}
	if in.From == "" {
		return in, false, p.errf("%s: %s: from is required", d, who)
	}
	who = fmt.Sprintf("input %q", in.From)
	if partitionSet {
		known := false
		for _, k := range partitions {
			known = known || k == in.Partition
		}
		if !known {
			return in, false, p.errf("%s: %s: unknown partition %q (known: %s)", d, who, in.Partition, strings.Join(partitions, ", "))
		}
	}
	switch {
	case in.Partition == Hash && in.Key == "":
		return in, false, p.errf("%s: %s: partition hash needs a key", d, who)
	case keySet && in.Partition != Hash:
		return in, false, p.errf("%s: %s: key %q is only allowed with partition hash", d, who, in.Key)
	}
	return in, partitionSet, nil
}

// properties decodes and validates properties: unknown names first (so a
// typo is reported as such, not as a missing required property), then
// required ones, then the type's own Validate.
func (p *parser) properties(d *opDecl, n *yaml.Node) error {
	n = resolve(n)
	if isNull(n) {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		return p.errf("%s: properties: want a mapping, got %s at line %d", d.typed(), describeNode(n), n.Line)
	}
	fs, err := fields(n)
	if err != nil {
		return p.errf("%s: properties: %v", d.typed(), err)
	}
	dec := &propertyDecoder{}
	for _, f := range fs {
		v, err := dec.value(f.value, 1)
		if err != nil {
			return p.errf("%s: property %q: %v", d.typed(), f.key, err)
		}
		d.op.Properties[f.key] = v
	}
	return nil
}

// checkProperties runs the type's checks on the decoded properties.
func (p *parser) checkProperties(d *opDecl) error {
	if unknown := d.op.Properties.Unknown(d.typ.Properties); len(unknown) > 0 {
		known := make([]string, len(d.typ.Properties))
		for i, s := range d.typ.Properties {
			known[i] = s.Name
		}
		list := "none"
		if len(known) > 0 {
			list = strings.Join(known, ", ")
		}
		if len(unknown) == 1 {
			return p.errf("%s: unknown property %q (known: %s)", d.typed(), unknown[0], list)
		}
		return p.errf("%s: unknown properties %s (known: %s)", d.typed(), quoteAll(unknown), list)
	}
	for _, s := range d.typ.Properties {
		if v, ok := d.op.Properties[s.Name]; s.Required && (!ok || v == nil) {
			return p.errf("%s: property %q is required", d.typed(), s.Name)
		}
	}
	if d.typ.Validate != nil {
		if err := validate(d.typ, d.op.Properties); err != nil {
			return p.wrap(d.typed(), err)
		}
	}
	return nil
}

// wrap prefixes err with the file and who, keeping it inspectable with
// errors.Is/As.
func (p *parser) wrap(who string, err error) error {
	if p.file == "" {
		return fmt.Errorf("%s: %w", who, err)
	}
	return fmt.Errorf("%s: %s: %w", p.file, who, err)
}

// validate calls a type's Validate, turning a panic (a bug in the type,
// triggered by a user's file) into an error: the JobManager must not crash
// on a submitted job.
func validate(t *operator.Type, props operator.Properties) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("validating properties failed: %v", r)
		}
	}()
	return t.Validate(props)
}

func quoteAll(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = fmt.Sprintf("%q", n)
	}
	return strings.Join(q, ", ")
}

// link checks, operator by operator in file order, what needs the whole
// graph: inputs exist and may be inputs, partitions are resolved and fit
// the parallelism, keyed types get keyed inputs.
func (p *parser) link(decls []*opDecl, byID map[string]*opDecl) error {
	for _, d := range decls {
		switch {
		case d.typ.Kind == operator.KindSource && len(d.op.Inputs) > 0:
			return p.errf("%s: a source takes no input", d.typed())
		case d.typ.Kind != operator.KindSource && len(d.op.Inputs) == 0:
			return p.errf("%s: input is required", d.typed())
		}
		for i := range d.op.Inputs {
			in := &d.op.Inputs[i]
			from, ok := byID[in.From]
			if !ok {
				return p.errf("%s: input %q does not exist", d, in.From)
			}
			if from.typ.Kind == operator.KindSink {
				return p.errf("%s: input %q is a sink (%s), which has no output", d, in.From, from.op.Type)
			}
			if !d.inputs[i].partitionSet {
				// Flink's default: forward keeps records in their subtask
				// (and allows chaining); with a different parallelism there
				// is no one-to-one subtask mapping, so spread evenly.
				in.Partition = Rebalance
				if from.op.Parallelism == d.op.Parallelism {
					in.Partition = Forward
				}
			}
			if in.Partition == Forward && from.op.Parallelism != d.op.Parallelism {
				return p.errf("%s: input %q: forward partitioning needs equal parallelism, %q has %d and %q has %d",
					d, in.From, in.From, from.op.Parallelism, d.op.ID, d.op.Parallelism)
			}
			if d.typ.Keyed && in.Partition != Hash {
				return p.errf("%s: input %q must be partitioned by hash, is %s", d.typed(), in.From, in.Partition)
			}
		}
	}
	return nil
}

// topological orders the operators inputs first, ties broken by file order
// (Kahn's algorithm always taking the earliest ready operator), or reports
// a cycle.
func (p *parser) topological(decls []*opDecl, byID map[string]*opDecl) ([]*opDecl, error) {
	placed := make(map[string]bool, len(decls))
	order := make([]*opDecl, 0, len(decls))
	for len(order) < len(decls) {
		progress := false
		for _, d := range decls {
			if placed[d.op.ID] {
				continue
			}
			ready := true
			for _, in := range d.op.Inputs {
				ready = ready && placed[in.From]
			}
			if ready {
				placed[d.op.ID] = true
				order = append(order, d)
				progress = true
				break // restart from the top: an earlier operator may now be ready
			}
		}
		if !progress {
			return nil, p.errf("operators form a cycle: %s", strings.Join(findCycle(decls, byID, placed), " -> "))
		}
	}
	return order, nil
}

// findCycle returns one cycle among the unplaced operators, in the
// direction records flow, starting and ending at its operator that comes
// first in the file.
func findCycle(decls []*opDecl, byID map[string]*opDecl, placed map[string]bool) []string {
	// Every unplaced operator has an unplaced input, so walking upstream
	// from any of them must revisit one.
	var start *opDecl
	for _, d := range decls {
		if !placed[d.op.ID] {
			start = d
			break
		}
	}
	seenAt := map[string]int{}
	var path []*opDecl
	for d := start; ; {
		if at, seen := seenAt[d.op.ID]; seen {
			path = path[at:]
			break
		}
		seenAt[d.op.ID] = len(path)
		path = append(path, d)
		for _, in := range d.op.Inputs {
			if !placed[in.From] {
				d = byID[in.From]
				break
			}
		}
	}
	// path walks upstream; rotate so the earliest operator in the file
	// comes first, then reverse into flow order.
	first := 0
	for i, d := range path {
		if d.ordinal < path[first].ordinal {
			first = i
		}
	}
	ids := make([]string, 0, len(path)+1)
	for i := 0; i < len(path); i++ {
		ids = append(ids, path[(first-i+len(path))%len(path)].op.ID)
	}
	return append(ids, ids[0])
}
