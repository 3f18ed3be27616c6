package user

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kitshop/kitshop/pkg/errs"
	"github.com/kitshop/kitshop/pkg/testenv"
)

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// newBudget makes a Budget of burst attempts per period on clock c.
type newBudget func(t *testing.T, burst int, per time.Duration, c *clock) Budget

func TestThrottle(t *testing.T) {
	testBudget(t, func(_ *testing.T, burst int, per time.Duration, c *clock) Budget {
		return NewThrottle(burst, per, c.now)
	})
}

func TestPostgresThrottle(t *testing.T) {
	testBudget(t, func(t *testing.T, burst int, per time.Duration, c *clock) Budget {
		return NewPostgresThrottle(testenv.Postgres(t, Migrations()), "email", burst, per, c.now)
	})
}

// testBudget is the conformance suite of both Budgets.
func testBudget(t *testing.T, newBudget newBudget) {
	ctx := context.Background()
	take := func(t *testing.T, b Budget, key string) time.Duration {
		t.Helper()
		w, err := b.Take(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		return w
	}
	giveBack := func(t *testing.T, b Budget, key string) {
		t.Helper()
		if err := b.Return(ctx, key); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("burst, wait, refill", func(t *testing.T) {
		c := &clock{t: t0}
		b := newBudget(t, 3, time.Minute, c)
		for i := range 3 {
			if w := take(t, b, "a"); w != 0 {
				t.Fatalf("attempt %d: wait %v, want 0", i+1, w)
			}
		}
		if w := take(t, b, "a"); w != 20*time.Second {
			t.Fatalf("after 3 attempts: wait %v, want 20s (one attempt per 20s)", w)
		}
		if w := take(t, b, "b"); w != 0 {
			t.Fatalf("another key: wait %v, want 0", w)
		}
		c.advance(15 * time.Second)
		if w := take(t, b, "a"); w != 5*time.Second {
			t.Fatalf("15s later: wait %v, want 5s (a refused attempt takes nothing)", w)
		}
		c.advance(5 * time.Second)
		if w := take(t, b, "a"); w != 0 {
			t.Fatalf("20s later: wait %v, want 0", w)
		}
		if w := take(t, b, "a"); w != 20*time.Second {
			t.Fatalf("again at once: wait %v, want 20s", w)
		}
		giveBack(t, b, "a")
		if w := take(t, b, "a"); w != 0 {
			t.Fatalf("after a returned attempt: wait %v, want 0", w)
		}
	})

	t.Run("returns never raise the burst", func(t *testing.T) {
		b := newBudget(t, 2, time.Minute, &clock{t: t0})
		for range 10 {
			take(t, b, "a")
			giveBack(t, b, "a")
			giveBack(t, b, "a")
		}
		for i := range 2 {
			if w := take(t, b, "a"); w != 0 {
				t.Fatalf("attempt %d: wait %v", i+1, w)
			}
		}
		if w := take(t, b, "a"); w == 0 {
			t.Fatal("a third attempt within the burst of 2 was allowed")
		}
	})

	// Attempts at once (on one instance, or several sharing the database) are
	// counted exactly.
	t.Run("concurrent", func(t *testing.T) {
		b := newBudget(t, 10, time.Minute, &clock{t: t0})
		var granted atomic.Int32
		var wg sync.WaitGroup
		for range 40 {
			wg.Go(func() {
				w, err := b.Take(ctx, "a")
				if err != nil {
					t.Error(err)
				}
				if w == 0 {
					granted.Add(1)
				}
			})
		}
		wg.Wait()
		if n := granted.Load(); n != 10 {
			t.Fatalf("40 attempts at once, burst 10: %d granted", n)
		}
	})

	t.Run("forgets full buckets", func(t *testing.T) {
		c := &clock{t: t0}
		b := newBudget(t, 10, time.Minute, c)
		for i := range 50 {
			take(t, b, "addr-"+strconv.Itoa(i))
		}
		c.advance(time.Minute)
		take(t, b, "late")
		if n := budgetKeys(t, b); n != 1 {
			t.Fatalf("keys remembered after a minute idle = %d, want 1", n)
		}
	})

	t.Run("off", func(t *testing.T) {
		b := newBudget(t, 0, time.Minute, &clock{t: t0})
		for i := range 100 {
			if w := take(t, b, "a"); w != 0 {
				t.Fatalf("attempt %d: wait %v", i+1, w)
			}
		}
	})
}

// budgetKeys is the number of keys b remembers.
func budgetKeys(t *testing.T, b Budget) int {
	t.Helper()
	switch b := b.(type) {
	case *Throttle:
		return b.Len()
	case *PostgresThrottle:
		var n int
		if err := b.db.QueryRow(`SELECT count(*) FROM login_budgets WHERE scope = $1`, b.scope).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	t.Fatalf("unknown budget %T", b)
	return 0
}

func TestRateLimitedError(t *testing.T) {
	err := error(rateLimitedError{wait: 1500 * time.Millisecond})
	if !errors.Is(err, ErrRateLimited) {
		t.Fatal("not ErrRateLimited")
	}
	if e := errs.From(err); e.Code != "rate_limited" || e.Kind.Status() != 429 {
		t.Fatalf("errs.From = %+v", e)
	}
	if s := err.(errs.RetryAfter).RetryAfterSeconds(); s != 2 {
		t.Fatalf("Retry-After = %d, want 2 (rounded up)", s)
	}
}
