package testenv_test

import (
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/kitshop/kitshop/pkg/testenv"
)

// TestSyncBufferConcurrentWrites: lines written by several goroutines while another
// reads all arrive whole (and -race sees no race).
func TestSyncBufferConcurrentWrites(t *testing.T) {
	var b testenv.SyncBuffer
	const writers, lines = 4, 100
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range lines {
				fmt.Fprintf(&b, "writer %d line %d\n", w, i)
			}
		})
	}
	wg.Go(func() {
		for range lines {
			_ = b.String()
		}
	})
	wg.Wait()
	got := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	var want []string
	for w := range writers {
		for i := range lines {
			want = append(want, fmt.Sprintf("writer %d line %d", w, i))
		}
	}
	sort.Strings(got)
	sort.Strings(want)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("got %d lines, want %d whole ones:\n%s", len(got), len(want), b.String())
	}
}
