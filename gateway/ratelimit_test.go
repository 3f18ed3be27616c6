package gateway

import (
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/kitshop/kitshop/pkg/errs"
)

type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

func TestLimiterWaitAndRefill(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	l := newLimiters(Limit{Rate: 2, Burst: 3}, 100, clock.now)
	for i := range 3 {
		if ok, _ := l.allow("a"); !ok {
			t.Fatalf("request %d of the burst refused", i+1)
		}
	}
	ok, wait := l.allow("a")
	if ok || wait != 500*time.Millisecond {
		t.Fatalf("over the burst: ok %v, wait %v; want a refusal and 500ms at 2/s", ok, wait)
	}
	if ok, _ := l.allow("b"); !ok {
		t.Error("another key shares a's bucket")
	}
	clock.t = clock.t.Add(500 * time.Millisecond)
	if ok, _ := l.allow("a"); !ok {
		t.Error("a token was not refilled after 500ms")
	}
}

func TestLimiterMemoryIsBounded(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	l := newLimiters(Limit{Rate: 10, Burst: 10}, 50, clock.now) // refills in 1 s
	for i := range 40 {
		l.allow("idle-" + strconv.Itoa(i))
	}
	clock.t = clock.t.Add(2 * time.Second)
	l.allow("fresh")
	if n := l.size(); n != 1 {
		t.Errorf("%d buckets after the others idled past their refill time, want 1", n)
	}
	for i := range 500 {
		l.allow("flood-" + strconv.Itoa(i))
	}
	if n := l.size(); n > 50 {
		t.Errorf("%d buckets, cap 50", n)
	}
}

func TestRateLimitedError(t *testing.T) {
	err := error(rateLimited{wait: 1500 * time.Millisecond})
	if !errors.Is(err, ErrRateLimited) || errs.From(err).Kind != errs.RateLimited {
		t.Errorf("%v is not ErrRateLimited", err)
	}
	if s := err.(errs.RetryAfter).RetryAfterSeconds(); s != 2 {
		t.Errorf("Retry-After %d s for a 1.5 s wait, want 2", s)
	}
}
