package testenv_test

import (
	"strings"
	"testing"

	"github.com/kitshop/kitshop/pkg/testenv"
)

func TestRandomHex(t *testing.T) {
	for _, n := range []int{1, 4, 16} {
		a, b := testenv.RandomHex(n), testenv.RandomHex(n)
		if len(a) != 2*n || strings.Trim(a, "0123456789abcdef") != "" {
			t.Fatalf("RandomHex(%d) = %q, want %d hex digits", n, a, 2*n)
		}
		if n >= 4 && a == b {
			t.Fatalf("RandomHex(%d) twice gave %q", n, a)
		}
	}
}
