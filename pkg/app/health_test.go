package app

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-kit/log"
)

// TestHealthRound: callers within healthReuse of a round share it, a caller that gives
// up does not fail it for the others, draining shows at once, and a later caller
// runs a new round.
func TestHealthRound(t *testing.T) {
	var runs atomic.Int32
	a := &App{Logger: log.NewNopLogger(), checks: map[string]func(context.Context) error{
		"db": func(ctx context.Context) error {
			runs.Add(1)
			time.Sleep(20 * time.Millisecond)
			return ctx.Err()
		},
	}}
	gone, cancel := context.WithCancel(context.Background())
	cancel()
	ctxs := []context.Context{gone, context.Background(), context.Background(), context.Background()}
	statuses := make([]string, len(ctxs))
	var wg sync.WaitGroup
	for i, ctx := range ctxs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			statuses[i], _ = a.health(ctx)
		}()
	}
	wg.Wait()
	for i, s := range statuses {
		if s != "ok" {
			t.Fatalf("caller %d: status %q, want ok", i, s)
		}
	}
	if n := runs.Load(); n != 1 {
		t.Fatalf("%d rounds for callers at once, want 1", n)
	}

	a.draining.Store(true)
	if s, _ := a.health(context.Background()); s != "draining" || runs.Load() != 1 {
		t.Fatalf("draining: status %q after %d rounds, want draining after 1", s, runs.Load())
	}

	a.healthRound.mu.Lock()
	a.healthRound.at = time.Now().Add(-healthReuse)
	a.healthRound.mu.Unlock()
	a.health(context.Background())
	if n := runs.Load(); n != 2 {
		t.Fatalf("%d rounds after the reuse time, want 2", n)
	}
}
