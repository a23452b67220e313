package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"google.golang.org/grpc"

	"github.com/weirstream/weir/pkg/config"
	"github.com/weirstream/weir/pkg/security"
)

// Version is weir's version, set at build time with
// -ldflags "-X github.com/weirstream/weir/pkg/cli.Version=v0.1.0".
var Version = "dev"

const (
	// DefaultJobManager is the JobManager address used when neither
	// --jobmanager, the high-availability keys nor WEIR_JOBMANAGER say
	// otherwise (Flink's JobManager RPC port).
	DefaultJobManager = "127.0.0.1:6123"
	// EnvJobManager names the environment variable holding the JobManager
	// address or addresses (host:port,host:port), as --jobmanager does.
	EnvJobManager = "WEIR_JOBMANAGER"

	defaultTimeout = 10 * time.Second
	// A savepoint writes the state of every operator, which can take far
	// longer than a status call; savepoint and stop wait this long unless
	// --timeout is given.
	defaultSavepointTimeout = 10 * time.Minute
	defaultPollInterval     = 500 * time.Millisecond
	// With several JobManagers to try, one that does not connect within
	// this is left for the next: a connect on a LAN takes milliseconds.
	defaultConnectTimeout = 2 * time.Second
)

// Exit codes.
const (
	exitOK          = 0
	exitFailure     = 1
	exitUsage       = 2
	exitInterrupted = 130
)

// Services are the drivers that main chooses for the command line, as the
// daemons' mains choose theirs: this package links no storage or etcd
// client of its own.
type Services struct {
	// Storage registers the storage drivers that `weir checkpoint inspect`
	// may use, beyond the built-in file and jobmanager ones.
	Storage []StorageDrivers
	// HA opens the leader lookup of the high-availability service that
	// the configuration names (--config, -D); nil refuses every
	// high-availability.type but none.
	HA HAServices
}

// Main runs the weir command line with args (without the program name) and
// returns the process exit code. Ctrl-C cancels what weir is waiting for (an
// RPC, or `weir run` watching its job), never the job itself.
func Main(args []string, stdout, stderr io.Writer, s Services) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	return Run(ctx, args, stdout, stderr, s)
}

// Run is Main with the interrupt given as ctx: when ctx is done, weir stops
// waiting and returns 130.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer, s Services) int {
	a := newApp(stdout, stderr)
	a.services = s
	return a.run(ctx, args)
}

// app holds one invocation: its outputs, the parsed global flags and the
// lazily created connections. The clock, the time zone, the poll interval
// and the connect timeout are fields so that tests can fix them.
type app struct {
	stdout, stderr io.Writer
	getenv         func(string) string
	fileExists     func(string) bool // for finding the configuration file
	now            func() time.Time
	loc            *time.Location
	pollInterval   time.Duration
	connectTimeout time.Duration
	services       Services

	jobmanagers jobManagerList // --jobmanager, or WEIR_JOBMANAGER as its default
	timeout     time.Duration
	configFile  string   // --config
	overrides   []string // -D
	root        *cobra.Command

	cfg     *config.Config // loaded by the first use of config
	cfgFile string         // the file cfg was read from ("": none)
	cfgFrom string         // where cfgFile came from (config.SourceFlag, ...)
	cfgErr  error
	leaders LeaderReader // opened by the first use with high availability

	apiTLS *security.TLS               // security.ssl.api.*; nil: plaintext (loaded by route)
	conns  map[string]*grpc.ClientConn // by JobManager address
	leader string                      // the JobManager that served the last call: asked first
}

func newApp(stdout, stderr io.Writer) *app {
	return &app{
		stdout:         stdout,
		stderr:         stderr,
		getenv:         os.Getenv,
		fileExists:     config.FileExists,
		now:            time.Now,
		loc:            time.Local,
		pollInterval:   defaultPollInterval,
		connectTimeout: defaultConnectTimeout,
	}
}

// exitError ends the command with code after printing "weir: msg" (if msg
// is not empty) to stderr.
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return e.msg }

func failf(format string, args ...any) error {
	return &exitError{code: exitFailure, msg: fmt.Sprintf(format, args...)}
}

// usageError marks an error found by a command itself (not by cobra) that is
// the user's wrong use of it.
type usageError struct{ error }

func (a *app) run(ctx context.Context, args []string) int {
	defer a.closeConns()
	root := a.newRootCommand()
	root.SetArgs(args)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return exitOK
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.msg != "" {
			fmt.Fprintf(a.stderr, "weir: %s\n", printable(oneLine(ee.msg)))
		}
		return ee.code
	}
	// Anything else is cobra's (or our) complaint about the arguments.
	fmt.Fprintf(a.stderr, "weir: %s\n", printable(err.Error()))
	if cmd != nil {
		fmt.Fprint(a.stderr, cmd.UsageString())
	}
	return exitUsage
}

func (a *app) newRootCommand() *cobra.Command {
	a.jobmanagers = jobManagerList{raw: DefaultJobManager, addrs: []string{DefaultJobManager}}
	if v := a.getenv(EnvJobManager); v != "" {
		// Checked when a command needs it: a bad environment must not
		// break the commands that talk to no JobManager.
		a.jobmanagers = jobManagerList{raw: v, fromEnv: true}
		a.jobmanagers.addrs, a.jobmanagers.err = parseJobManagers(v)
	}
	root := &cobra.Command{
		Use:   "weir",
		Short: "weir runs and manages stream-processing jobs on a weir cluster",
		Long: `weir talks to a weir JobManager: it submits jobs, shows their status, and
cancels, stops and savepoints them, with Apache Flink's verbs.`,
		Version:           Version,
		SilenceErrors:     true,
		SilenceUsage:      true,
		DisableAutoGenTag: true,
	}
	root.SetOut(a.stdout)
	root.SetErr(a.stderr)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	pf := root.PersistentFlags()
	pf.VarP(&a.jobmanagers, "jobmanager", "m",
		"JobManager address host:port, or several: host1:6123,host2:6123 (tried in order; a standby's answer leads to the leader) (env "+EnvJobManager+")")
	a.timeout = defaultTimeout
	pf.Var((*timeoutFlag)(&a.timeout), "timeout",
		"how long to wait for each call to the JobManager, finding the leader included (savepoint and stop: "+strings.TrimSuffix(defaultSavepointTimeout.String(), "0s")+" unless given)")
	pf.StringVar(&a.configFile, "config", "",
		"read the YAML configuration `FILE`, as the daemons' (default: $"+config.ConfDirEnv+"/"+config.ConfigFileName+", else "+config.SystemConfigFile+" if it exists)")
	pf.StringArrayVarP(&a.overrides, "define", "D", nil,
		"set a configuration key: -D `key=value` (repeatable; also -Dkey=value); with run and info, a key that is not a cluster setting configures the job")

	root.AddCommand(
		a.newRunCommand(),
		a.newInfoCommand(),
		a.newListCommand(),
		a.newStatusCommand(),
		a.newCancelCommand(),
		a.newStopCommand(),
		a.newSavepointCommand(),
		a.newCheckpointsCommand(),
		a.newCheckpointCommand(),
		a.newTaskManagersCommand(),
		a.newJobManagersCommand(),
		a.newVersionCommand(),
		a.newCompletionCommand(),
	)
	// cobra's own completion command prints its help and exits 0 for a
	// shell it does not know; ours says which shells there are.
	root.CompletionOptions.DisableDefaultCmd = true
	root.SetGlobalNormalizationFunc(flinkFlagNames)
	a.root = root
	return root
}

// flinkNames maps Flink's spellings of flags (flink run --fromSavepoint,
// flink stop --savepointPath) to weir's, so that a Flink user's command line
// works as typed. The short forms are the same in both (-s, -n, -p, -d, -m).
var flinkNames = map[string]string{
	"fromSavepoint":         "from-savepoint",
	"allowNonRestoredState": "allow-non-restored-state",
	"savepointPath":         "savepoint-path",
}

func flinkFlagNames(_ *pflag.FlagSet, name string) pflag.NormalizedName {
	if n, ok := flinkNames[name]; ok {
		return pflag.NormalizedName(n)
	}
	return pflag.NormalizedName(name)
}

// oneLine makes an error message one line where it comes in several: CEL's
// compile errors carry the expression and a caret under the column on
// lines of their own (" | ..."), which the position in the first line
// already gives; several errors are joined with "; ". Other line breaks
// stay, to be escaped by printable like any control character.
func oneLine(msg string) string {
	if !strings.Contains(msg, "\n") {
		return msg
	}
	lines := strings.Split(msg, "\n")
	out := lines[:1]
	for _, l := range lines[1:] {
		switch {
		case strings.HasPrefix(l, " | "):
			continue
		case strings.HasPrefix(l, "ERROR: "):
			out[len(out)-1] += "; " + l
		default:
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// timeoutFlag is the value of --timeout: a positive duration. It validates
// while flags are parsed, so that --timeout 0 is a usage error rather than
// a call that fails at once and blames the connection.
type timeoutFlag time.Duration

func (d *timeoutFlag) String() string { return time.Duration(*d).String() }
func (d *timeoutFlag) Type() string   { return "duration" }
func (d *timeoutFlag) Set(s string) error {
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("want a duration such as 30s or 2m")
	}
	if v <= 0 {
		return fmt.Errorf("must be positive, is %s", v)
	}
	*d = timeoutFlag(v)
	return nil
}

// addOutputFlag gives a read command its -o/--output flag.
func addOutputFlag(cmd *cobra.Command, o *outputFormat) {
	*o = outputTable
	cmd.Flags().VarP(o, "output", "o", "output format: table or json")
}

// runE adapts a command body: its errors are failures (exit 1), not usage
// errors, unless it says otherwise with usageError.
func runE(f func(cmd *cobra.Command, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		err := f(cmd, args)
		if err == nil {
			return nil
		}
		var ue usageError
		var ee *exitError
		if errors.As(err, &ue) || errors.As(err, &ee) {
			return err
		}
		return &exitError{code: exitFailure, msg: err.Error()}
	}
}

// errInterrupted ends a command the user interrupted with Ctrl-C.
var errInterrupted = &exitError{code: exitInterrupted, msg: "interrupted"}

// dialReason extracts the operating system's reason from gRPC's wrapping of a
// failed dial, e.g. `connection error: desc = "transport: Error while
// dialing: dial tcp 127.0.0.1:6123: connect: connection refused"` gives
// `connect: connection refused`. Unknown shapes are returned whole.
func dialReason(msg string) string {
	const dialing = "Error while dialing: "
	if i := strings.LastIndex(msg, dialing); i >= 0 {
		msg = strings.TrimSuffix(msg[i+len(dialing):], `"`)
	}
	switch {
	case strings.HasPrefix(msg, "dial tcp: "): // "dial tcp: lookup HOST: reason"
		msg = strings.TrimPrefix(msg, "dial tcp: ")
	case strings.HasPrefix(msg, "dial tcp "):
		// "dial tcp ADDR: reason"; ADDR holds ':' but never ": ".
		if j := strings.Index(msg, ": "); j >= 0 {
			msg = msg[j+2:]
		}
	}
	return msg
}

// cancelHint is the command that cancels job id, with the flags that chose
// the JobManager (--jobmanager, or the configuration that finds the leader)
// when the user gave them, so it can be pasted as is.
func (a *app) cancelHint(id string) string {
	args := []string{"weir"}
	pf := a.root.PersistentFlags()
	if pf.Changed("jobmanager") {
		args = append(args, "--jobmanager", a.jobmanagers.raw)
	} else if a.highAvailability() {
		if a.configFile != "" {
			args = append(args, "--config", a.configFile)
		}
		for _, d := range a.overrides {
			args = append(args, "-D", d)
		}
	}
	args = append(args, "cancel", id)
	for i, s := range args {
		args[i] = shellQuote(s)
	}
	return strings.Join(args, " ")
}

// shellQuote returns s as one word of a POSIX shell: as is when it holds
// only characters no shell acts on, else in single quotes.
func shellQuote(s string) string {
	safe := s != ""
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("@%+=:,./_-", r)) {
			safe = false
			break
		}
	}
	if safe {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
