// Package calltoken is the secret a TaskManager requires on the
// JobManager's calls to it. The TaskManager draws a token when it starts and
// sends it in its registration; the JobManager's client for that
// registration sends it back on every TaskExecutorGateway call, as gRPC
// metadata; the TaskManager refuses a call without it.
//
// Internal TLS (security.ssl.internal.*) already keeps out whoever has no
// certificate of the cluster's CA; the token also keeps out any other
// cluster member (a TaskManager, a JobManager that is not the one this
// TaskManager registered with), and, without TLS, whoever can reach the
// TaskManager's port but not read the registration traffic. It does not
// replace the leader epoch (package leaderepoch), which orders successive
// leaders that all know the token.
package calltoken

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"errors"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
)

// MetadataKey is the gRPC metadata key of the token.
const MetadataKey = "weir-call-token"

// New returns a fresh token: 128 random bits (crypto/rand.Text).
func New() string { return rand.Text() }

// UnaryClientInterceptor adds token to every call; it adds nothing for "".
func UnaryClientInterceptor(token string) grpc.UnaryClientInterceptor {
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		if token != "" {
			ctx = metadata.AppendToOutgoingContext(ctx, MetadataKey, token)
		}
		return invoker(ctx, method, req, reply, cc, opts...)
	}
}

// Errors of Check; their texts never contain a token.
var (
	ErrMissing = errors.New("the call carries no " + MetadataKey + ": only the JobManager this TaskManager registered with may call it")
	ErrWrong   = errors.New("the call's " + MetadataKey + " is not the one this TaskManager registered with: only that JobManager may call it")
)

// Check returns nil when the call in ctx carries exactly want, else
// ErrMissing or ErrWrong. The comparison takes the same time whatever the
// value, so that the token cannot be guessed byte by byte.
func Check(ctx context.Context, want string) error {
	vs := metadata.ValueFromIncomingContext(ctx, MetadataKey)
	if len(vs) == 0 {
		return ErrMissing
	}
	if len(vs) != 1 || subtle.ConstantTimeCompare([]byte(vs[0]), []byte(want)) != 1 {
		return ErrWrong
	}
	return nil
}
