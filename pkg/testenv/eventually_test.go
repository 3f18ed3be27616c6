package testenv_test

import (
	"testing"
	"time"

	"github.com/kitshop/kitshop/pkg/testenv"
)

func TestEventually(t *testing.T) {
	tests := []struct {
		name      string
		holdsFrom int // the call from which cond is true; 0 for never
		timeout   time.Duration
		wantCalls int    // exactly, when it holds; at least, when it never does
		wantFail  string // the failure, "" for none
	}{
		{"holds at once", 1, time.Minute, 1, ""},
		{"holds on the third call", 3, time.Minute, 3, ""},
		{"never holds", 0, 50 * time.Millisecond, 2, "the thing: not yet after 50ms"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			calls := 0
			cond := func() bool {
				calls++
				return tt.holdsFrom > 0 && calls >= tt.holdsFrom
			}
			got := failure(t, func(tb testing.TB) { testenv.Eventually(tb, tt.timeout, "the thing", cond) })
			if got != tt.wantFail {
				t.Fatalf("failure %q, want %q", got, tt.wantFail)
			}
			if tt.wantFail == "" && calls != tt.wantCalls {
				t.Fatalf("%d calls, want %d", calls, tt.wantCalls)
			}
			if tt.wantFail != "" && calls < tt.wantCalls {
				t.Fatalf("%d calls before failing, want at least %d", calls, tt.wantCalls)
			}
		})
	}
}
