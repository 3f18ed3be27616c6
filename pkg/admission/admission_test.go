package admission_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-kit/kit/metrics"

	"github.com/kitshop/kitshop/pkg/admission"
	"github.com/kitshop/kitshop/pkg/errs"
)

// TestAdmit: with every slot taken, a call waits for one within MaxWait and its own
// deadline, or is refused; with as many waiting as the ceiling, it is refused at once.
func TestAdmit(t *testing.T) {
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	for _, tt := range []struct {
		name      string
		limit     int
		maxWait   time.Duration
		ctx       func() (context.Context, context.CancelFunc)
		waiters   int           // calls already waiting in line
		freeAfter time.Duration // a slot is given back this long after the call (0: never)
		wantErr   error
	}{
		{"a slot frees while it waits", 1, time.Minute, background, 0, 20 * time.Millisecond, nil},
		{"no wait allowed", 1, 0, background, 0, 20 * time.Millisecond, errs.ErrOverloaded},
		{"its wait runs out", 1, 30 * time.Millisecond, background, 0, 0, errs.ErrOverloaded},
		{"its deadline comes first", 1, time.Minute, deadline(30 * time.Millisecond), 0, 0, errs.ErrOverloaded},
		{"the line is full", 1, time.Minute, background, 1, 20 * time.Millisecond, errs.ErrOverloaded},
		{"room in line", 2, time.Minute, background, 1, 20 * time.Millisecond, nil},
		{"the caller leaves", 1, time.Minute, func() (context.Context, context.CancelFunc) { return canceled, func() {} }, 0, 0, context.Canceled},
	} {
		t.Run(tt.name, func(t *testing.T) {
			shed := &counter{}
			l := admission.NewLimiter(tt.limit, tt.maxWait, shed)
			held := holdSlots(t, l, tt.limit)
			lineCtx, leaveLine := context.WithCancel(context.Background())
			defer leaveLine()
			for range tt.waiters {
				go func() {
					if release, err := l.Admit(lineCtx); err == nil {
						release(false)
					}
				}()
			}
			time.Sleep(10 * time.Millisecond) // the waiters are in line
			if tt.freeAfter > 0 {
				time.AfterFunc(tt.freeAfter, func() { held[0](false) })
			}
			ctx, cancel := tt.ctx()
			defer cancel()
			release, err := l.Admit(ctx)
			if !errors.Is(err, tt.wantErr) || (err == nil) != (tt.wantErr == nil) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if err == nil {
				release(false)
			}
			wantShed := 0.0
			if errors.Is(tt.wantErr, errs.ErrOverloaded) {
				wantShed = 1
			}
			if got := shed.n.Load(); float64(got) != wantShed {
				t.Fatalf("%v calls counted as shed, want %v", got, wantShed)
			}
		})
	}
}

// mustAdmit admits a call through l that finds a slot free, and returns its release.
func mustAdmit(t *testing.T, l *admission.Limiter) admission.Release {
	t.Helper()
	release, err := l.Admit(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return release
}

// holdSlots admits n calls through l and returns their releases.
func holdSlots(t *testing.T, l *admission.Limiter, n int) []admission.Release {
	t.Helper()
	held := make([]admission.Release, 0, n)
	for range n {
		held = append(held, mustAdmit(t, l))
	}
	return held
}

// waitInLine starts a first call through l that waits in line (it is given the time
// to get there), and returns its outcome when it has one; an admitted call is
// released at once.
func waitInLine(l *admission.Limiter) <-chan error {
	done := make(chan error, 1)
	go func() {
		release, err := l.Admit(context.Background())
		if err == nil {
			release(false)
		}
		done <- err
	}()
	time.Sleep(20 * time.Millisecond)
	return done
}

// counter is a metrics.Counter the test reads.
type counter struct{ n atomic.Int64 }

func (c *counter) With(...string) metrics.Counter { return c }
func (c *counter) Add(d float64)                  { c.n.Add(int64(d)) }

func background() (context.Context, context.CancelFunc) { return context.Background(), func() {} }

func deadline(d time.Duration) func() (context.Context, context.CancelFunc) {
	return func() (context.Context, context.CancelFunc) { return context.WithTimeout(context.Background(), d) }
}

// TestMiddleware: a refused request gets 503, Retry-After and the overloaded code,
// and never reaches the handler; an admitted one does, and gives its slot back.
func TestMiddleware(t *testing.T) {
	l := admission.NewLimiter(1, 0, nil)
	reached := 0
	h := l.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { reached++ }))

	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	if rec.Code != http.StatusOK || reached != 1 || l.InFlight() != 0 {
		t.Fatalf("admitted: status %d, reached %d, in flight %d", rec.Code, reached, l.InFlight())
	}

	hold, err := l.Admit(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer hold(false)
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") == "" ||
		!strings.Contains(rec.Body.String(), `"overloaded"`) || reached != 1 {
		t.Fatalf("refused: status %d, Retry-After %q, body %s, reached %d",
			rec.Code, rec.Header().Get("Retry-After"), rec.Body.String(), reached)
	}
}

// TestCallerTimeout: the deadline a caller sends becomes the request's; a missing or
// unusable one changes nothing.
func TestCallerTimeout(t *testing.T) {
	for _, tt := range []struct {
		header string
		want   time.Duration // 0: no deadline
	}{
		{"250", 250 * time.Millisecond},
		{"", 0},
		{"soon", 0},
		{"0", 0},
		{"-5", 0},
		{"600001", 0}, // over ten minutes
	} {
		t.Run(tt.header, func(t *testing.T) {
			var got time.Duration
			h := admission.WithCallerTimeout(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if d, ok := r.Context().Deadline(); ok {
					got = time.Until(d)
				}
			}))
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			if tt.header != "" {
				r.Header.Set(admission.TimeoutHeader, tt.header)
			}
			h.ServeHTTP(httptest.NewRecorder(), r)
			if tt.want == 0 && got != 0 || tt.want > 0 && (got <= 0 || got > tt.want) {
				t.Fatalf("deadline in %v, want %v", got, tt.want)
			}
		})
	}

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	h := http.Header{}
	admission.SetTimeout(ctx, h)
	if ms, err := strconv.Atoi(h.Get(admission.TimeoutHeader)); err != nil || ms < 1900 || ms > 2000 {
		t.Fatalf("sent %q for a 2 s deadline", h.Get(admission.TimeoutHeader))
	}
	h = http.Header{}
	admission.SetTimeout(context.Background(), h)
	if v := h.Get(admission.TimeoutHeader); v != "" {
		t.Fatalf("sent %q without a deadline", v)
	}
}

// TestAdaptiveLimit: once per target's time the limit is scaled by target/mean latency
// of the calls that ended in it (at most halved, at most a tenth and at least one
// more), within its floor and ceiling; a call ending overloaded counts as twice the
// target.
func TestAdaptiveLimit(t *testing.T) {
	now := time.Unix(0, 0)
	clock := func() time.Time { return now }
	l := admission.New(admission.Config{Limit: 100, Min: 4, Target: 100 * time.Millisecond, MaxWait: time.Second, Now: clock})
	type call struct {
		took       time.Duration
		overloaded bool
	}
	calls := func(n int, took time.Duration) []call {
		c := make([]call, n)
		for i := range c {
			c[i] = call{took: took}
		}
		return c
	}
	for _, step := range []struct {
		name  string
		calls []call
		want  int
	}{
		{"within the target, at the ceiling", calls(20, 10*time.Millisecond), 100},
		{"twice the target: halved", calls(1, 200*time.Millisecond), 50},
		{"a half over: two thirds", calls(1, 150*time.Millisecond), 33},
		{"overloaded counts as twice the target", []call{{10 * time.Millisecond, true}, {95 * time.Millisecond, false}}, 22},
		{"slow windows, down to the floor", calls(5, 500*time.Millisecond), 4},
		{"fast windows: one more each", calls(4, 50*time.Millisecond), 6},
	} {
		for _, c := range step.calls {
			release, err := l.Admit(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			now = now.Add(c.took)
			release(c.overloaded)
		}
		if got := l.Limit(); got != step.want {
			t.Fatalf("%s: limit %d, want %d", step.name, got, step.want)
		}
	}
}

// TestBusyLine: a calm limiter lets calls wait their MaxWait, and one that outwaits
// its deadline leaves it calm; a call that finds the line full makes it busy: calls
// already in line longer than BusyWait are refused when their turn comes, instead of
// served late; Patience after the last refusal it is calm again.
func TestBusyLine(t *testing.T) {
	var clock atomic.Int64 // seconds
	shed := &counter{}
	l := admission.New(admission.Config{
		Limit: 4, MaxWait: time.Minute, Patience: time.Second, BusyWait: 0, Shed: shed,
		Now: func() time.Time { return time.Unix(clock.Load(), 0) },
	})
	held := holdSlots(t, l, 4)
	outcome := func(what string, c <-chan error, want error) {
		t.Helper()
		if err := <-c; !errors.Is(err, want) || (err == nil) != (want == nil) {
			t.Fatalf("%s: err = %v, want %v", what, err, want)
		}
	}

	first := waitInLine(l) // in line from 0 s
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if _, err := l.Admit(ctx); !errors.Is(err, errs.ErrOverloaded) {
		t.Fatalf("deadline in line: err = %v, want %v", err, errs.ErrOverloaded)
	}
	clock.Store(3)
	held[0](false)
	outcome("calm: served after 3 s in line", first, nil)
	held[0] = mustAdmit(t, l) // the slot it left

	var line []<-chan error
	for range 4 {
		line = append(line, waitInLine(l))
	}
	clock.Store(5) // the line is full: busy from 5 s
	if _, err := l.Admit(context.Background()); !errors.Is(err, errs.ErrOverloaded) {
		t.Fatalf("a full line: err = %v, want %v", err, errs.ErrOverloaded)
	}
	held[0](false)
	for _, c := range line {
		outcome("busy: a turn 2 s late", c, errs.ErrOverloaded)
	}
	held[0] = mustAdmit(t, l)

	clock.Store(7) // calm again: a call waits, and gets the slot freed meanwhile
	second := waitInLine(l)
	held[1](false)
	outcome("calm again", second, nil)
	if got := shed.n.Load(); got != 6 {
		t.Fatalf("%d calls counted as shed, want 6", got)
	}
}

// TestLimiterUnderContention: many callers at once never have more than the limit
// admitted, and every slot comes back.
func TestLimiterUnderContention(t *testing.T) {
	l := admission.New(admission.Config{Limit: 4, MaxWait: time.Second})
	var inside, most atomic.Int64
	var wg sync.WaitGroup
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 20 {
				release, err := l.Admit(context.Background())
				if err != nil {
					continue
				}
				n := inside.Add(1)
				for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
				}
				time.Sleep(100 * time.Microsecond)
				inside.Add(-1)
				release(false)
			}
		}()
	}
	wg.Wait()
	if most.Load() > 4 || l.InFlight() != 0 {
		t.Fatalf("%d admitted at once (limit 4), %d still in flight", most.Load(), l.InFlight())
	}
}
