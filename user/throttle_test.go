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
		if w := th.Wait("a"); w != 0 {
			t.Fatalf("attempt %d: wait %v, want 0", i+1, w)
		}
		th.Fail("a")
	}
	if w := th.Wait("a"); w != 20*time.Second {
		t.Fatalf("after 3 failures: wait %v, want 20s (one failure per 20s)", w)
	}
	if w := th.Wait("b"); w != 0 {
		t.Fatalf("another key: wait %v, want 0", w)
	}
	c.advance(15 * time.Second)
	if w := th.Wait("a"); w != 5*time.Second {
		t.Fatalf("15s later: wait %v, want 5s", w)
	}
	c.advance(5 * time.Second)
	if w := th.Wait("a"); w != 0 {
		t.Fatalf("20s later: wait %v, want 0", w)
	}
	th.Fail("a")
	if w := th.Wait("a"); w != 20*time.Second {
		t.Fatalf("failing again at once: wait %v, want 20s", w)
	}
}

func TestThrottleForgetsIdleKeys(t *testing.T) {
	c := &clock{t: t0}
	th := NewThrottle(10, time.Minute, c.now)
	for i := range 1000 {
		th.Fail("addr-" + strconv.Itoa(i))
	}
	c.advance(time.Minute)
	th.Fail("late")
	if n := th.Len(); n != 1 {
		t.Fatalf("keys remembered after a minute idle = %d, want 1", n)
	}
}

func TestThrottleOff(t *testing.T) {
	th := NewThrottle(0, time.Minute, time.Now)
	for range 100 {
		th.Fail("a")
	}
	if w := th.Wait("a"); w != 0 || th.Len() != 0 {
		t.Fatalf("disabled throttle: wait %v, keys %d", w, th.Len())
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
