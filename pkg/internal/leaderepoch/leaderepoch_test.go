package leaderepoch

import (
	"context"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
)

func TestFromIncomingContext(t *testing.T) {
	long := strings.Repeat("9", 40)
	for _, tc := range []struct {
		md      metadata.MD
		want    int64
		wantErr string
	}{
		{md: nil, want: 0},
		{md: metadata.Pairs("other", "1"), want: 0},
		{md: metadata.Pairs(MetadataKey, "0"), want: 0},
		{md: metadata.Pairs(MetadataKey, "42"), want: 42},
		{md: metadata.Pairs(MetadataKey, "9223372036854775807"), want: 9223372036854775807},
		{md: metadata.Pairs(MetadataKey, "-1"), wantErr: `metadata weir-leader-epoch "-1": not a non-negative integer`},
		{md: metadata.Pairs(MetadataKey, "0x10"), wantErr: `metadata weir-leader-epoch "0x10": not a non-negative integer`},
		{md: metadata.Pairs(MetadataKey, ""), wantErr: `metadata weir-leader-epoch "": not a non-negative integer`},
		{md: metadata.Pairs(MetadataKey, long), wantErr: `metadata weir-leader-epoch "` + long[:32] + `...": not a non-negative integer`},
		{md: metadata.Pairs(MetadataKey, "1", MetadataKey, "2"), wantErr: "metadata weir-leader-epoch: 2 values, want one"},
	} {
		ctx := context.Background()
		if tc.md != nil {
			ctx = metadata.NewIncomingContext(ctx, tc.md)
		}
		got, err := FromIncomingContext(ctx)
		switch {
		case tc.wantErr != "" && (err == nil || err.Error() != tc.wantErr):
			t.Errorf("%v: error %v, want %q", tc.md, err, tc.wantErr)
		case tc.wantErr == "" && (err != nil || got != tc.want):
			t.Errorf("%v: %d, %v; want %d", tc.md, got, err, tc.want)
		}
	}
}

func TestUnaryClientInterceptor(t *testing.T) {
	for _, tc := range []struct {
		epoch int64
		want  []string
	}{
		{epoch: 0, want: nil},
		{epoch: -3, want: nil},
		{epoch: 17, want: []string{"17"}},
	} {
		var got []string
		invoker := func(ctx context.Context, _ string, _, _ any, _ *grpc.ClientConn, _ ...grpc.CallOption) error {
			md, _ := metadata.FromOutgoingContext(ctx)
			got = md.Get(MetadataKey)
			return nil
		}
		icpt := UnaryClientInterceptor(func() int64 { return tc.epoch })
		if err := icpt(context.Background(), "/m", nil, nil, nil, invoker); err != nil {
			t.Fatal(err)
		}
		if strings.Join(got, ",") != strings.Join(tc.want, ",") || len(got) != len(tc.want) {
			t.Errorf("epoch %d: sent %q, want %q", tc.epoch, got, tc.want)
		}
	}
}
