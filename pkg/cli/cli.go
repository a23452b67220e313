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
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/weirstream/weir/proto/weirpb"
)

// Version is weir's version, set at build time with
// -ldflags "-X github.com/weirstream/weir/pkg/cli.Version=v0.1.0".
var Version = "dev"

const (
	// DefaultJobManager is the JobManager address used when neither
	// --jobmanager nor WEIR_JOBMANAGER is set (Flink's JobManager RPC port).
	DefaultJobManager = "127.0.0.1:6123"
	// EnvJobManager names the environment variable holding the JobManager address.
	EnvJobManager = "WEIR_JOBMANAGER"

	defaultTimeout = 10 * time.Second
	// A savepoint writes the state of every operator, which can take far
	// longer than a status call; savepoint and stop wait this long unless
	// --timeout is given.
	defaultSavepointTimeout = 10 * time.Minute
	defaultPollInterval     = 500 * time.Millisecond
)

// Exit codes.
const (
	exitOK          = 0
	exitFailure     = 1
	exitUsage       = 2
	exitInterrupted = 130
)

// Main runs the weir command line with args (without the program name) and
// returns the process exit code. Ctrl-C cancels what weir is waiting for (an
// RPC, or `weir run` watching its job), never the job itself. drivers
// register the storage drivers that `weir checkpoint inspect` may use.
func Main(args []string, stdout, stderr io.Writer, drivers ...StorageDrivers) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	return Run(ctx, args, stdout, stderr, drivers...)
}

// Run is Main with the interrupt given as ctx: when ctx is done, weir stops
// waiting and returns 130.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer, drivers ...StorageDrivers) int {
	a := newApp(stdout, stderr)
	a.drivers = drivers
	return a.run(ctx, args)
}

// app holds one invocation: its outputs, the parsed global flags and the
// lazily created connection. The clock, the time zone and the poll interval
// are fields so that tests can fix them.
type app struct {
	stdout, stderr io.Writer
	getenv         func(string) string
	now            func() time.Time
	loc            *time.Location
	pollInterval   time.Duration
	drivers        []StorageDrivers

	jobmanager string
	timeout    time.Duration
	root       *cobra.Command

	conn   *grpc.ClientConn
	client weirpb.JobServiceClient
}

func newApp(stdout, stderr io.Writer) *app {
	return &app{
		stdout:       stdout,
		stderr:       stderr,
		getenv:       os.Getenv,
		now:          time.Now,
		loc:          time.Local,
		pollInterval: defaultPollInterval,
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
	defer a.closeConn()
	root := a.newRootCommand()
	root.SetArgs(args)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return exitOK
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.msg != "" {
			fmt.Fprintf(a.stderr, "weir: %s\n", printable(ee.msg))
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
	defaultJM := DefaultJobManager
	if v := a.getenv(EnvJobManager); v != "" {
		defaultJM = v
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
	pf.StringVar(&a.jobmanager, "jobmanager", defaultJM,
		"JobManager address host:port (env "+EnvJobManager+")")
	a.timeout = defaultTimeout
	pf.Var((*timeoutFlag)(&a.timeout), "timeout", "how long to wait for each call to the JobManager")

	root.AddCommand(
		a.newRunCommand(),
		a.newListCommand(),
		a.newStatusCommand(),
		a.newCancelCommand(),
		a.newStopCommand(),
		a.newSavepointCommand(),
		a.newCheckpointsCommand(),
		a.newCheckpointCommand(),
		a.newTaskManagersCommand(),
		a.newVersionCommand(),
		a.newCompletionCommand(),
	)
	// cobra's own completion command prints its help and exits 0 for a
	// shell it does not know; ours says which shells there are.
	root.CompletionOptions.DisableDefaultCmd = true
	a.root = root
	return root
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

// maxResponseSize bounds what the CLI accepts in one answer.
const maxResponseSize = 64 << 20

// jobService returns the JobService client, creating the connection on first
// use. grpc.NewClient does not dial: the first RPC does, so commands that
// need no JobManager (version, help) never touch the network.
func (a *app) jobService() (weirpb.JobServiceClient, error) {
	if a.client != nil {
		return a.client, nil
	}
	conn, err := grpc.NewClient(a.jobmanager,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithUnaryInterceptor(recordPeer),
		// The status of a job at the subtask limit (jobgraph.MaxSubtasks:
		// 100,000 task rows of about 100 bytes) is past gRPC's default 4 MiB;
		// the answers come from the JobManager the user chose to talk to.
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxResponseSize)))
	if err != nil {
		return nil, failf("invalid JobManager address %q: %v", a.jobmanager, err)
	}
	a.conn = conn
	a.client = weirpb.NewJobServiceClient(conn)
	return a.client, nil
}

func (a *app) closeConn() {
	if a.conn != nil {
		_ = a.conn.Close()
		a.conn, a.client = nil, nil
	}
}

// call runs one RPC with the given timeout and turns its error into the line
// the user sees.
func (a *app) call(ctx context.Context, timeout time.Duration, rpc func(context.Context, weirpb.JobServiceClient) error) error {
	c, err := a.jobService()
	if err != nil {
		return err
	}
	var p peer.Peer
	rctx, cancel := context.WithTimeout(context.WithValue(ctx, peerKey{}, &p), timeout)
	defer cancel()
	if err := rpc(rctx, c); err != nil {
		return a.rpcError(ctx, rctx, timeout, p.Addr != nil, err)
	}
	return nil
}

// peerKey carries, in an RPC's context, where recordPeer stores the server
// the RPC reached.
type peerKey struct{}

// recordPeer records the RPC's peer. gRPC sets it only if the RPC got a
// stream to the server, which is how an error the server answered is told
// apart from a connection that failed: both can be Unavailable.
func recordPeer(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	if p, ok := ctx.Value(peerKey{}).(*peer.Peer); ok {
		opts = append(opts, grpc.Peer(p))
	}
	return invoker(ctx, method, req, reply, cc, opts...)
}

// errInterrupted ends a command the user interrupted with Ctrl-C.
var errInterrupted = &exitError{code: exitInterrupted, msg: "interrupted"}

// rpcError explains a failed RPC in one line: the server's own message when
// the server answered, and where weir tried to connect when it could not.
// ctx is the command's context (done on Ctrl-C), rctx the RPC's.
// connected says whether the RPC reached the server.
func (a *app) rpcError(ctx, rctx context.Context, timeout time.Duration, connected bool, err error) error {
	if ctx.Err() != nil {
		return errInterrupted
	}
	st := status.Convert(err)
	// The RPC's deadline passing shows as DeadlineExceeded, as Canceled
	// (RST_STREAM) when the server's copy of the deadline fires first, or
	// as the server's handler returning that deadline's error: in each case
	// the deadline is behind us, and the answer did not come in time.
	// (Context timers may fire late, so the clock decides, not rctx.Err.)
	// An error before the deadline is the server's own, even a
	// DeadlineExceeded (a savepoint timing out inside the JobManager).
	if deadline, ok := rctx.Deadline(); ok && !time.Now().Before(deadline) {
		if !connected {
			return a.unreachable(fmt.Sprintf("no connection within %s", timeout))
		}
		return failf("the JobManager at %s did not answer within %s (set --timeout)", a.jobmanager, timeout)
	}
	if st.Code() == codes.Unavailable && !connected {
		return a.unreachable(dialReason(st.Message()))
	}
	return failf("%s", st.Message())
}

func (a *app) unreachable(reason string) error {
	return failf("cannot reach the JobManager at %s: %s (is it running? set --jobmanager or %s)",
		a.jobmanager, reason, EnvJobManager)
}

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

// cancelHint is the command that cancels job id, with the --jobmanager flag
// when the user gave one, so it can be pasted as is.
func (a *app) cancelHint(id string) string {
	if f := a.root.PersistentFlags().Lookup("jobmanager"); f != nil && f.Changed {
		return fmt.Sprintf("weir --jobmanager %s cancel %s", a.jobmanager, id)
	}
	return "weir cancel " + id
}
