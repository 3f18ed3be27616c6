package admission_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kitshop/kitshop/pkg/admission"
	"github.com/kitshop/kitshop/pkg/errs"
)

// TestFollowUpsGoFirst: with the one slot taken, the calls in line get it follow-ups
// first, then first calls, each kind first come first; a follow-up that finds the
// line full takes the place of its last first call, which is refused, and a first
// call that finds it full is refused.
func TestFollowUpsGoFirst(t *testing.T) {
	for _, tt := range []struct {
		name    string
		limit   int
		arrive  []admission.Priority // in this order, after the limit's calls hold every slot
		served  []int                // the arrivals admitted, in the order they are
		refused []int
	}{
		{"a follow-up passes a first call", 2, []admission.Priority{admission.First, admission.FollowUp}, []int{1, 0}, nil},
		{"a full line: a follow-up takes the last first call's place, each kind in its order", 3,
			[]admission.Priority{admission.First, admission.FollowUp, admission.First, admission.FollowUp}, []int{1, 3, 0}, []int{2}},
		{"a full line of follow-ups refuses a follow-up", 1,
			[]admission.Priority{admission.FollowUp, admission.FollowUp}, []int{0}, []int{1}},
		{"a full line refuses a first call", 1,
			[]admission.Priority{admission.FollowUp, admission.First}, []int{0}, []int{1}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			l := admission.New(admission.Config{Limit: tt.limit, MaxWait: time.Minute})
			held := holdSlots(t, l, tt.limit)
			var (
				mu      sync.Mutex
				served  []int
				refused []int
				wg      sync.WaitGroup
				proceed = make(chan struct{})
			)
			for i, p := range tt.arrive {
				wg.Add(1)
				go func() {
					defer wg.Done()
					admit := l.Admit
					if p == admission.FollowUp {
						admit = l.AdmitFollowUp
					}
					release, err := admit(context.Background())
					mu.Lock()
					if err != nil {
						if !errors.Is(err, errs.ErrOverloaded) {
							t.Errorf("arrival %d: err = %v", i, err)
						}
						refused = append(refused, i)
						mu.Unlock()
						return
					}
					served = append(served, i)
					mu.Unlock()
					<-proceed // hold the slot until the test frees the next
					release(false)
				}()
				time.Sleep(10 * time.Millisecond) // in line before the next arrives
			}
			// One slot at a time: each freed slot goes to the next call in line.
			held[0](false)
			for range len(tt.arrive) {
				time.Sleep(10 * time.Millisecond)
				select {
				case proceed <- struct{}{}:
				default:
				}
			}
			close(proceed)
			wg.Wait()
			for _, release := range held[1:] {
				release(false)
			}
			if !slices.Equal(served, tt.served) || !slices.Equal(refused, tt.refused) {
				t.Errorf("served %v, refused %v; want served %v, refused %v", served, refused, tt.served, tt.refused)
			}
			if l.InFlight() != 0 {
				t.Errorf("%d still in flight", l.InFlight())
			}
		})
	}
}

// TestTickets: a ticket makes a follow-up of a request of the same holder before it
// expires, and of nothing else.
func TestTickets(t *testing.T) {
	var clock atomic.Int64 // milliseconds
	now := func() time.Time { return time.UnixMilli(clock.Load()) }
	tickets := admission.NewTickets("ticket", time.Second, now)
	issued := func(authorization string) *http.Cookie {
		rec := httptest.NewRecorder()
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.Header.Set("Authorization", authorization)
		tickets.Issue(rec, r)
		cookies := rec.Result().Cookies()
		if len(cookies) != 1 || cookies[0].Name != "ticket" || cookies[0].MaxAge != 1 || !cookies[0].HttpOnly {
			t.Fatalf("issued %v, want one HttpOnly cookie named ticket with Max-Age 1", cookies)
		}
		return cookies[0]
	}
	clock.Store(1_000)
	ann := issued("Bearer ann")
	anonymous := issued("")
	expiry, mac, _ := strings.Cut(ann.Value, ".")
	changed := "A" // the signature's first character, changed
	if mac[0] == 'A' {
		changed = "B"
	}
	tampered := *ann
	tampered.Value = expiry + "." + changed + mac[1:]
	longer := *ann // the expiry pushed back, the signature kept
	longer.Value = "zzzzzzzz." + mac
	other := admission.NewTickets("ticket", time.Second, now) // another process: another key
	for _, tt := range []struct {
		name          string
		tickets       *admission.Tickets
		cookie        *http.Cookie
		authorization string
		at            int64 // ms
		want          bool
	}{
		{"its holder, in time", tickets, ann, "Bearer ann", 1_999, true},
		{"anonymous, in time", tickets, anonymous, "", 1_500, true},
		{"expired", tickets, ann, "Bearer ann", 2_000, false},
		{"another holder", tickets, ann, "Bearer bob", 1_500, false},
		{"an anonymous one with a user's", tickets, ann, "", 1_500, false},
		{"tampered signature", tickets, &tampered, "Bearer ann", 1_500, false},
		{"expiry pushed back", tickets, &longer, "Bearer ann", 1_500, false},
		{"not a ticket", tickets, &http.Cookie{Name: "ticket", Value: "hello"}, "", 1_500, false},
		{"no ticket", tickets, nil, "", 1_500, false},
		{"another key", other, ann, "Bearer ann", 1_500, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			clock.Store(tt.at)
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			r.Header.Set("Authorization", tt.authorization)
			if tt.cookie != nil {
				r.AddCookie(tt.cookie)
			}
			if got := tt.tickets.FollowUp(r); got != tt.want {
				t.Errorf("FollowUp = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestMiddlewareTickets: a request admitted while the limiter is busy gets a ticket,
// unless it brought one; while calm, none does. One that brings a ticket passes the
// first calls in line.
func TestMiddlewareTickets(t *testing.T) {
	tickets := admission.NewTickets("ticket", time.Minute, nil)
	l := admission.New(admission.Config{Limit: 1, MaxWait: time.Minute, Patience: time.Minute, BusyWait: time.Minute, Tickets: tickets})
	var order []string
	h := l.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { order = append(order, r.URL.Path) }))
	serve := func(path string, cookie *http.Cookie) *http.Response {
		rec := httptest.NewRecorder()
		r := httptest.NewRequest(http.MethodGet, path, nil)
		if cookie != nil {
			r.AddCookie(cookie)
		}
		h.ServeHTTP(rec, r)
		return rec.Result()
	}
	if c := serve("/calm", nil).Cookies(); len(c) != 0 {
		t.Fatalf("calm: cookies %v, want none", c)
	}

	// Busy: with the slot held and one call in line, the next finds the line full.
	hold := mustAdmit(t, l)
	inLine := waitInLine(l)
	if _, err := l.Admit(context.Background()); !errors.Is(err, errs.ErrOverloaded) {
		t.Fatalf("a full line: err = %v", err)
	}
	hold(false)
	if err := <-inLine; err != nil {
		t.Fatal(err)
	}
	if !l.Busy() {
		t.Fatal("not busy after a full line")
	}
	first := serve("/first", nil).Cookies()
	if len(first) != 1 {
		t.Fatalf("busy, a first call: cookies %v, want a ticket", first)
	}
	if c := serve("/again", first[0]).Cookies(); len(c) != 0 {
		t.Fatalf("busy, a follow-up: cookies %v, want none (a ticket is not renewed)", c)
	}

	// In line behind a first call, the follow-up is served first.
	hold = mustAdmit(t, l)
	order = nil
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); serve("/new", nil) }()
	time.Sleep(10 * time.Millisecond)
	wg.Add(1)
	go func() { defer wg.Done(); serve("/follow-up", first[0]) }()
	time.Sleep(10 * time.Millisecond)
	hold(false)
	wg.Wait()
	if !slices.Equal(order, []string{"/follow-up"}) {
		// The line holds one (the limit): the follow-up took the first call's place.
		t.Fatalf("served %v, want [/follow-up]", order)
	}
}
