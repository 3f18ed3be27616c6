package admission

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Tickets tell an HTTP limiter's follow-ups from its first calls. While the limiter
// is busy, a request admitted as a first call is answered with a ticket, a cookie
// valid for a short while (TTL); a request that brings a valid one back is a
// follow-up. This is session-based admission control (Cherkasova and Phaal, 2002)
// cut down to one action: a shopper's next request — the product page after the
// list, the checkout after the cart — is served before the first request of another,
// so what a crowd is refused is the actions it has not begun, not the half of one it
// has.
//
// A ticket is minted only for a first call, never renewed by the follow-ups it
// admits: the follow-ups in line are then never more than what the first calls
// admitted a moment before bring with them, and the limiter, by admitting first
// calls, keeps the whole within its limit. A ticket is bound to the request's
// Authorization header (none for an anonymous one) and signed with a key of the
// process, so it is worth nothing to another user, nor after a restart, nor at
// another instance.
type Tickets struct {
	name string
	ttl  time.Duration
	key  []byte
	now  func() time.Time
}

// DefaultTicketTTL is how long a ticket admits follow-ups: the answer to a first call
// plus the moment its client takes to send the next request of the same action.
const DefaultTicketTTL = time.Second

// NewTickets returns the tickets of one limiter, carried in the cookie named name and
// valid for ttl; now is the clock (nil: time.Now).
func NewTickets(name string, ttl time.Duration, now func() time.Time) *Tickets {
	if now == nil {
		now = time.Now
	}
	key := make([]byte, 32)
	_, _ = rand.Read(key) // crypto/rand.Read never fails (Go 1.24)
	return &Tickets{name: name, ttl: ttl, key: key, now: now}
}

// FollowUp reports whether r brings a valid ticket.
func (t *Tickets) FollowUp(r *http.Request) bool {
	c, err := r.Cookie(t.name)
	if err != nil {
		return false
	}
	expiry, mac, ok := strings.Cut(c.Value, ".")
	if !ok {
		return false
	}
	ms, err := strconv.ParseInt(expiry, 36, 64)
	if err != nil || t.now().UnixMilli() >= ms {
		return false
	}
	got, err := base64.RawURLEncoding.DecodeString(mac)
	return err == nil && hmac.Equal(got, t.sign(expiry, r.Header.Get("Authorization")))
}

// Issue sets a ticket for r's follow-ups on w's header.
func (t *Tickets) Issue(w http.ResponseWriter, r *http.Request) {
	expiry := strconv.FormatInt(t.now().Add(t.ttl).UnixMilli(), 36)
	http.SetCookie(w, &http.Cookie{
		Name:     t.name,
		Value:    expiry + "." + base64.RawURLEncoding.EncodeToString(t.sign(expiry, r.Header.Get("Authorization"))),
		Path:     "/",
		MaxAge:   max(int((t.ttl+time.Second-1)/time.Second), 1),
		Secure:   r.TLS != nil,
		HttpOnly: true,
		SameSite: http.SameSiteLaxMode,
	})
}

// sign is the MAC of a ticket's expiry for the holder of authorization, cut to 128
// bits.
func (t *Tickets) sign(expiry, authorization string) []byte {
	m := hmac.New(sha256.New, t.key)
	m.Write([]byte(t.name))
	m.Write([]byte{0})
	m.Write([]byte(expiry))
	m.Write([]byte{0})
	m.Write([]byte(authorization))
	return m.Sum(nil)[:16]
}
