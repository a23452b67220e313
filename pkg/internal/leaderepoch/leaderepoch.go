// Package leaderepoch is the wire form of the JobManager leader's epoch
// on JobManager -> TaskManager calls: one gRPC metadata entry, written by
// the JobManager's client interceptor and read by the TaskManager's
// fence, so that both sides agree on it in one place.
//
// The epoch is the create revision of the leader's election key in etcd
// (package ha): it grows with every new leader. A call without the entry
// carries epoch 0: a JobManager that does not fence (standalone mode, or
// a test). A TaskManager rejects a call whose epoch is below the highest
// it has seen, so 0 passes only until the first fenced call arrives.
package leaderepoch

import (
	"context"
	"fmt"
	"strconv"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
)

// MetadataKey is the gRPC metadata key of the epoch (a decimal integer).
const MetadataKey = "weir-leader-epoch"

// UnaryClientInterceptor adds the epoch that epoch returns at the time of
// each call; it adds nothing when that is 0 or less (not fencing).
func UnaryClientInterceptor(epoch func() int64) grpc.UnaryClientInterceptor {
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		if e := epoch(); e > 0 {
			ctx = metadata.AppendToOutgoingContext(ctx, MetadataKey, strconv.FormatInt(e, 10))
		}
		return invoker(ctx, method, req, reply, cc, opts...)
	}
}

// maxShown bounds how much of a malformed value an error repeats.
const maxShown = 32

// FromIncomingContext returns the epoch a call carries, 0 when it carries
// none. A value that is not one non-negative decimal integer is an error
// naming the key and the value.
func FromIncomingContext(ctx context.Context) (int64, error) {
	vs := metadata.ValueFromIncomingContext(ctx, MetadataKey)
	switch len(vs) {
	case 0:
		return 0, nil
	case 1:
	default:
		return 0, fmt.Errorf("metadata %s: %d values, want one", MetadataKey, len(vs))
	}
	e, err := strconv.ParseInt(vs[0], 10, 64)
	if err != nil || e < 0 {
		v := vs[0]
		if len(v) > maxShown {
			v = v[:maxShown] + "..."
		}
		return 0, fmt.Errorf("metadata %s %q: not a non-negative integer", MetadataKey, v)
	}
	return e, nil
}

// LeaderAddressKey is the trailer metadata key with which a standby
// JobManager names the leader (host:port, empty when none is known) when it
// refuses a call that only the leader serves (codes.Unavailable).
const LeaderAddressKey = "weir-leader-address"
