package user

import (
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/kitshop/kitshop/pkg/errs"
)

// clock is a settable test clock.
type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }

func TestThrottle(t *testing.T) {
	c := &clock{t: t0}
	th := NewThrottle(3, time.Minute, c.now)
	for i := range 3 {
		if w := th.Take("a"); w != 0 {
			t.Fatalf("attempt %d: wait %v, want 0", i+1, w)
		}
	}
	if w := th.Take("a"); w != 20*time.Second {
		t.Fatalf("after 3 attempts: wait %v, want 20s (one attempt per 20s)", w)
	}
	if w := th.Take("b"); w != 0 {
		t.Fatalf("another key: wait %v, want 0", w)
	}
	c.advance(15 * time.Second)
	if w := th.Take("a"); w != 5*time.Second {
		t.Fatalf("15s later: wait %v, want 5s (a refused attempt takes nothing)", w)
	}
	c.advance(5 * time.Second)
	if w := th.Take("a"); w != 0 {
		t.Fatalf("20s later: wait %v, want 0", w)
	}
	if w := th.Take("a"); w != 20*time.Second {
		t.Fatalf("again at once: wait %v, want 20s", w)
	}
	th.Return("a")
	if w := th.Take("a"); w != 0 {
		t.Fatalf("after a returned attempt: wait %v, want 0", w)
	}
}

func TestThrottleReturnKeepsTheBurst(t *testing.T) {
	c := &clock{t: t0}
	th := NewThrottle(2, time.Minute, c.now)
	for range 10 {
		th.Take("a")
		th.Return("a")
		th.Return("a") // more returns than takes never raise the budget
	}
	for i := range 2 {
		if w := th.Take("a"); w != 0 {
			t.Fatalf("attempt %d: wait %v", i+1, w)
		}
	}
	if w := th.Take("a"); w == 0 {
		t.Fatal("a third attempt within the burst of 2 was allowed")
	}
}

func TestThrottleForgetsIdleKeys(t *testing.T) {
	c := &clock{t: t0}
	th := NewThrottle(10, time.Minute, c.now)
	for i := range 1000 {
		th.Take("addr-" + strconv.Itoa(i))
	}
	c.advance(time.Minute)
	th.Take("late")
	if n := th.Len(); n != 1 {
		t.Fatalf("keys remembered after a minute idle = %d, want 1", n)
	}
}

func TestThrottleOff(t *testing.T) {
	th := NewThrottle(0, time.Minute, time.Now)
	for i := range 100 {
		if w := th.Take("a"); w != 0 {
			t.Fatalf("attempt %d: wait %v", i+1, w)
		}
	}
	if th.Len() != 0 {
		t.Fatalf("disabled throttle: keys %d", th.Len())
	}
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
