package gateway

import (
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/kitshop/kitshop/pkg/errs"
)

// Limit is a token bucket: Rate requests a second on average, bursts of Burst.
type Limit struct {
	Rate  float64
	Burst int
}

// ErrRateLimited is the answer to a client over its limit.
var ErrRateLimited = errs.E(errs.RateLimited, "rate_limited", "too many requests; retry after the time in Retry-After")

// rateLimited carries how long the client should wait, for Retry-After.
type rateLimited struct{ wait time.Duration }

func (e rateLimited) Error() string          { return ErrRateLimited.Error() }
func (e rateLimited) Unwrap() error          { return ErrRateLimited }
func (e rateLimited) RetryAfterSeconds() int { return max(1, int(math.Ceil(e.wait.Seconds()))) }

// limiters holds one token bucket per client key (a user ID or a client address).
// Memory is bounded two ways: a bucket idle long enough to have refilled completely
// carries no information and is dropped by a sweep, and the number of buckets is
// capped (a flood of new addresses evicts arbitrary buckets, which only ever lets
// their owners burst again).
type limiters struct {
	limit    Limit
	maxKeys  int
	idle     time.Duration // time for an empty bucket to refill
	now      func() time.Time
	mu       sync.Mutex
	buckets  map[string]*bucket
	nextScan time.Time
}

type bucket struct {
	lim  *rate.Limiter
	seen time.Time
}

func newLimiters(l Limit, maxKeys int, now func() time.Time) *limiters {
	idle := time.Duration(float64(l.Burst) / l.Rate * float64(time.Second))
	return &limiters{
		limit:   l,
		maxKeys: maxKeys,
		idle:    max(idle, time.Second),
		now:     now,
		buckets: map[string]*bucket{},
	}
}

// allow takes a token for key, or says how long until one is available.
func (l *limiters) allow(key string) (bool, time.Duration) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.buckets[key]
	if !ok {
		l.makeRoom(now)
		b = &bucket{lim: rate.NewLimiter(rate.Limit(l.limit.Rate), l.limit.Burst)}
		l.buckets[key] = b
	}
	b.seen = now
	r := b.lim.ReserveN(now, 1)
	if !r.OK() {
		return false, l.idle
	}
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return false, d
	}
	return true, 0
}

// makeRoom drops refilled buckets every idle period, and arbitrary ones when the cap
// is reached anyway. Called with mu held, before adding a bucket.
func (l *limiters) makeRoom(now time.Time) {
	if now.After(l.nextScan) {
		for k, b := range l.buckets {
			if now.Sub(b.seen) >= l.idle {
				delete(l.buckets, k)
			}
		}
		l.nextScan = now.Add(l.idle)
	}
	for k := range l.buckets {
		if len(l.buckets) < l.maxKeys {
			break
		}
		delete(l.buckets, k)
	}
}

// size is the number of buckets held.
func (l *limiters) size() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.buckets)
}
