package cli

import (
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/weirstream/weir/pkg/config"
	"github.com/weirstream/weir/pkg/jobgraph"
	"github.com/weirstream/weir/pkg/restart"
)

func (a *app) newInfoCommand() *cobra.Command {
	var (
		parallelism int
		out         outputFormat
	)
	cmd := &cobra.Command{
		Use:   "info [-p N] [-D key=value]... JOBFILE",
		Short: "Show the execution plan of a job file without running it (no JobManager needed)",
		Long: `Validate JOBFILE as weir run would and show its execution plan, as flink
info does: its tasks (chains of operators), each operator's parallelism,
how each edge partitions its records and whether it is chained, the slots
the job needs, and the configuration it would run with: the configuration
file (--config, $WEIR_CONF_DIR/config.yaml or /etc/weir/config.yaml) and
-D under the job's config:. No JobManager is asked.`,
		Example: "  weir info examples/keyed-counts.yaml\n  weir info -p 4 -o json job.yaml",
		Args:    cobra.ExactArgs(1),
		RunE: runE(func(cmd *cobra.Command, args []string) error {
			path := args[0]
			spec, err := readJobFile(path)
			if err != nil {
				return err
			}
			cfg, err := a.config()
			if err != nil {
				return err
			}
			if spec, err = a.withOverrides(path, spec, parallelism); err != nil {
				return err
			}
			g, eff, warnings, err := parseJob(cfg, path, spec)
			if err != nil {
				return failf("%v", err)
			}
			for _, w := range warnings { // as weir run prints the JobManager's
				fmt.Fprintf(a.stderr, "warning: %s\n", printable(w))
			}
			plan, err := a.plan(path, g, eff)
			if err != nil {
				return err
			}
			if out == outputJSON {
				return writeJSON(a.stdout, plan)
			}
			return writePlanTable(a.stdout, plan)
		}),
	}
	addParallelismFlag(cmd, &parallelism)
	addOutputFlag(cmd, &out)
	return cmd
}

// The JSON shape of `weir info -o json` (fields are added, never renamed).
type planJSON struct {
	Name                 string           `json:"name"`
	File                 string           `json:"file"`
	Parallelism          int              `json:"parallelism"`
	MaxParallelism       int              `json:"max_parallelism"`
	Slots                int              `json:"slots"`
	Subtasks             int              `json:"subtasks"`
	CheckpointIntervalMS int64            `json:"checkpoint_interval_ms"`
	CheckpointingMode    string           `json:"checkpointing_mode"`
	RestartStrategy      string           `json:"restart_strategy"`
	Tasks                []planTaskJSON   `json:"tasks"`
	Operators            []planOpJSON     `json:"operators"`
	Edges                []planEdgeJSON   `json:"edges"`
	Config               []planConfigJSON `json:"config"`
}

type planTaskJSON struct {
	Index       int      `json:"index"`
	Name        string   `json:"name"`
	Operators   []string `json:"operators"`
	Parallelism int      `json:"parallelism"`
}

type planOpJSON struct {
	ID          string `json:"id"`
	Type        string `json:"type"`
	Parallelism int    `json:"parallelism"`
	Task        int    `json:"task"`
}

type planEdgeJSON struct {
	From      string `json:"from"`
	To        string `json:"to"`
	Partition string `json:"partition"`
	Key       string `json:"key"`
	Chained   bool   `json:"chained"`
}

type planConfigJSON struct {
	Key   string `json:"key"`
	Value string `json:"value"`
	From  string `json:"from"`
}

// plan is what `weir info` shows of a validated job: its vertices as the
// JobManager chains them (jobgraph.Vertices, the function it calls), and
// the configuration it would run with.
func (a *app) plan(path string, g *jobgraph.JobGraph, eff *config.Config) (*planJSON, error) {
	vertices := g.Vertices()
	p := &planJSON{
		Name:              g.Name,
		File:              path,
		Parallelism:       g.Parallelism,
		MaxParallelism:    g.MaxParallelism,
		Slots:             g.MaxParallelismOfVertices(),
		CheckpointingMode: eff.String(config.CheckpointingMode),
		Tasks:             []planTaskJSON{},
		Operators:         []planOpJSON{},
		Edges:             []planEdgeJSON{},
		Config:            []planConfigJSON{},
	}
	checkpointing := eff.IsSet(config.CheckpointingInterval)
	if checkpointing {
		p.CheckpointIntervalMS = eff.Duration(config.CheckpointingInterval).Milliseconds()
	}
	strategy, err := restart.FromConfig(eff, checkpointing, nil)
	if err != nil {
		return nil, failf("%v", err)
	}
	p.RestartStrategy = strategy.String()
	task := map[string]int{}
	for _, v := range vertices {
		ids := make([]string, len(v.Operators))
		for i, op := range v.Operators {
			ids[i] = op.ID
			task[op.ID] = v.Index
		}
		p.Subtasks += v.Parallelism
		p.Tasks = append(p.Tasks, planTaskJSON{Index: v.Index, Name: strings.Join(ids, " -> "), Operators: ids, Parallelism: v.Parallelism})
	}
	for _, op := range g.Operators {
		p.Operators = append(p.Operators, planOpJSON{ID: op.ID, Type: op.Type, Parallelism: op.Parallelism, Task: task[op.ID]})
		for _, in := range op.Inputs {
			p.Edges = append(p.Edges, planEdgeJSON{From: in.From, To: op.ID, Partition: in.Partition, Key: in.Key,
				Chained: task[in.From] == task[op.ID]})
		}
	}
	jobKeys, err := a.jobOverrides()
	if err != nil {
		return nil, err
	}
	defined, err := config.ParseOverrides(a.overrides)
	if err != nil {
		return nil, failf("%v", err)
	}
	fromFile := "defaults"
	if a.cfgFile != "" {
		fromFile = a.cfgFile
	}
	values := eff.Redacted()
	keys := make([]string, 0, len(values))
	for k := range values {
		// The daemons' own settings say nothing about the job.
		if o, ok := config.Lookup(k); ok && o.Cluster() {
			continue
		}
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		from := fromFile
		_, job := jobKeys[k]
		_, def := defined[k]
		switch {
		case job || def:
			from = "-D"
		case g.Config[k] != "":
			from = "job file"
		}
		p.Config = append(p.Config, planConfigJSON{Key: k, Value: values[k], From: from})
	}
	return p, nil
}

// writePlanTable writes the human form of `weir info`.
func writePlanTable(w io.Writer, p *planJSON) error {
	h := newTable(w)
	h.row("Job:", p.Name)
	h.row("File:", p.File)
	h.row("Parallelism:", fmt.Sprintf("%d (max %d)", p.Parallelism, p.MaxParallelism))
	h.row("Slots:", strconv.Itoa(p.Slots))
	h.row("Tasks:", fmt.Sprintf("%d (%d subtasks)", len(p.Tasks), p.Subtasks))
	cp := "off"
	if p.CheckpointIntervalMS > 0 {
		cp = fmt.Sprintf("every %s, %s", humanDuration(time.Duration(p.CheckpointIntervalMS)*time.Millisecond), p.CheckpointingMode)
	}
	h.row("Checkpointing:", cp)
	h.row("Restart strategy:", p.RestartStrategy)
	if err := h.flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	t := newTable(w, "TASK", "OPERATORS", "PARALLELISM")
	for _, v := range p.Tasks {
		t.row(strconv.Itoa(v.Index), v.Name, strconv.Itoa(v.Parallelism))
	}
	if err := t.flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	t = newTable(w, "OPERATOR", "TYPE", "PARALLELISM", "TASK")
	for _, op := range p.Operators {
		t.row(op.ID, op.Type, strconv.Itoa(op.Parallelism), strconv.Itoa(op.Task))
	}
	if err := t.flush(); err != nil {
		return err
	}
	if len(p.Edges) > 0 {
		fmt.Fprintln(w)
		t = newTable(w, "FROM", "TO", "PARTITION", "KEY", "CHAINED")
		for _, e := range p.Edges {
			chained := "no"
			if e.Chained {
				chained = "yes"
			}
			t.row(e.From, e.To, e.Partition, orDash(e.Key), chained)
		}
		if err := t.flush(); err != nil {
			return err
		}
	}
	fmt.Fprintln(w)
	if len(p.Config) == 0 {
		_, err := fmt.Fprintln(w, "Configuration: all defaults")
		return err
	}
	t = newTable(w, "CONFIGURATION", "VALUE", "FROM")
	for _, c := range p.Config {
		t.row(c.Key, c.Value, c.From)
	}
	return t.flush()
}
