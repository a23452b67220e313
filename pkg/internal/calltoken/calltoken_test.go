package calltoken

import (
	"context"
	"strings"
	"testing"

	"google.golang.org/grpc/metadata"
)

func TestCheck(t *testing.T) {
	tok := New()
	if len(tok) != 26 || New() == tok {
		t.Fatalf("New: %q", tok)
	}
	for _, tc := range []struct {
		name string
		md   metadata.MD
		want error
	}{
		{"right", metadata.Pairs(MetadataKey, tok), nil},
		{"none", metadata.MD{}, ErrMissing},
		{"empty", metadata.Pairs(MetadataKey, ""), ErrWrong},
		{"wrong", metadata.Pairs(MetadataKey, New()), ErrWrong},
		{"prefix", metadata.Pairs(MetadataKey, tok[:10]), ErrWrong},
		{"twice", metadata.Pairs(MetadataKey, tok, MetadataKey, tok), ErrWrong},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Check(metadata.NewIncomingContext(context.Background(), tc.md), tok)
			if err != tc.want {
				t.Fatalf("Check: %v, want %v", err, tc.want)
			}
			if err != nil && strings.Contains(err.Error(), tok) {
				t.Fatal("the error shows the token")
			}
		})
	}
}
