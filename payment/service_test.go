package payment

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kitshop/kitshop/pkg/errs"
)

// now is the clock of the service tests: November 2026.
func now() time.Time { return t0 }

// countingProcessor counts calls to the processor it wraps.
type countingProcessor struct {
	next  Processor
	calls atomic.Int32
}

func (p *countingProcessor) Authorize(ctx context.Context, card Card, amount Money) (Authorization, error) {
	p.calls.Add(1)
	return p.next.Authorize(ctx, card, amount)
}

func newTestService(t *testing.T) (Service, Store, *countingProcessor) {
	t.Helper()
	sim, err := NewSimulatedProcessor(SimulatedConfig{Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	store := NewMemoryStore()
	proc := &countingProcessor{next: sim}
	return NewService(store, proc, now), store, proc
}

func validRequest() ChargeRequest {
	return ChargeRequest{
		OrderID: "order-1",
		UserID:  "user-1",
		Amount:  Money{Amount: 1999, Currency: "EUR"},
		Card:    Card{Number: TestCardSucceeds, ExpMonth: 12, ExpYear: 2030, CVC: "123"},
	}
}

func TestChargeBadInput(t *testing.T) {
	tests := []struct {
		name   string
		change func(r *ChargeRequest)
		want   *errs.Error
	}{
		{"zero amount", func(r *ChargeRequest) { r.Amount.Amount = 0 }, ErrInvalidAmount},
		{"negative amount", func(r *ChargeRequest) { r.Amount.Amount = -500 }, ErrInvalidAmount},
		{"absurd amount", func(r *ChargeRequest) { r.Amount.Amount = MaxAmount + 1 }, ErrInvalidAmount},
		{"unknown currency", func(r *ChargeRequest) { r.Amount.Currency = "XYZ" }, ErrUnsupportedCurrency},
		{"currency outside the accepted set", func(r *ChargeRequest) { r.Amount.Currency = "JPY" }, ErrUnsupportedCurrency},
		{"lowercase currency", func(r *ChargeRequest) { r.Amount.Currency = "eur" }, ErrUnsupportedCurrency},
		{"empty currency", func(r *ChargeRequest) { r.Amount.Currency = "" }, ErrUnsupportedCurrency},
		{"card number failing Luhn", func(r *ChargeRequest) { r.Card.Number = "4242424242424241" }, ErrInvalidCardNumber},
		{"card number with letters", func(r *ChargeRequest) { r.Card.Number = "4242abcd42424242" }, ErrInvalidCardNumber},
		{"card number with spaces", func(r *ChargeRequest) { r.Card.Number = "4242 4242 4242 4242" }, ErrInvalidCardNumber},
		{"card number too short", func(r *ChargeRequest) { r.Card.Number = "42" }, ErrInvalidCardNumber},
		{"card number too long", func(r *ChargeRequest) { r.Card.Number = "42424242424242424242" }, ErrInvalidCardNumber},
		{"empty card number", func(r *ChargeRequest) { r.Card.Number = "" }, ErrInvalidCardNumber},
		{"expired last month", func(r *ChargeRequest) { r.Card.ExpYear, r.Card.ExpMonth = 2026, 10 }, ErrCardExpired},
		{"expired last year", func(r *ChargeRequest) { r.Card.ExpYear = 2025 }, ErrCardExpired},
		{"month 0", func(r *ChargeRequest) { r.Card.ExpMonth = 0 }, ErrInvalidExpiry},
		{"month 13", func(r *ChargeRequest) { r.Card.ExpMonth = 13 }, ErrInvalidExpiry},
		{"two-digit year", func(r *ChargeRequest) { r.Card.ExpYear = 30 }, ErrInvalidExpiry},
		{"year too far ahead", func(r *ChargeRequest) { r.Card.ExpYear = 2099 }, ErrInvalidExpiry},
		{"CVC too short", func(r *ChargeRequest) { r.Card.CVC = "12" }, ErrInvalidCVC},
		{"CVC with letters", func(r *ChargeRequest) { r.Card.CVC = "12a" }, ErrInvalidCVC},
		{"empty CVC", func(r *ChargeRequest) { r.Card.CVC = "" }, ErrInvalidCVC},
		{"4-digit CVC on visa", func(r *ChargeRequest) { r.Card.CVC = "1234" }, ErrInvalidCVC},
		{"3-digit CVC on amex", func(r *ChargeRequest) { r.Card.Number, r.Card.CVC = "378282246310005", "123" }, ErrInvalidCVC},
		{"empty order ID", func(r *ChargeRequest) { r.OrderID = "" }, ErrInvalidOrderID},
		{"order ID with a slash", func(r *ChargeRequest) { r.OrderID = "a/b" }, ErrInvalidOrderID},
		{"order ID too long", func(r *ChargeRequest) { r.OrderID = strings.Repeat("a", 65) }, ErrInvalidOrderID},
		{"empty user ID", func(r *ChargeRequest) { r.UserID = "" }, ErrInvalidUserID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			svc, store, proc := newTestService(t)
			r := validRequest()
			tt.change(&r)
			_, _, err := svc.Charge(context.Background(), r)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if errs.From(err).Kind.Status() != 400 {
				t.Fatalf("status %d, want 400", errs.From(err).Kind.Status())
			}
			if msg := err.Error(); strings.Contains(msg, r.Card.Number) && r.Card.Number != "" || r.Card.CVC != "" && strings.Contains(msg, r.Card.CVC) {
				t.Fatalf("error %q repeats card data", msg)
			}
			// Nothing written, nothing asked of the processor.
			if _, err := store.ChargeByOrder(context.Background(), r.OrderID); !errors.Is(err, ErrChargeNotFound) {
				t.Fatalf("a charge was stored: %v", err)
			}
			if proc.calls.Load() != 0 {
				t.Fatal("the processor was called")
			}
		})
	}
}

func TestChargeCards(t *testing.T) {
	tests := []struct {
		name        string
		number, cvc string
		status      string
		declineCode string
		brand       string
	}{
		{"visa test card succeeds", TestCardSucceeds, "123", StatusSucceeded, "", BrandVisa},
		{"declined test card", TestCardDeclined, "123", StatusDeclined, DeclineCardDeclined, BrandVisa},
		{"insufficient funds test card", TestCardInsufficientFunds, "123", StatusDeclined, DeclineInsufficientFunds, BrandVisa},
		{"mastercard", "5555555555554444", "123", StatusSucceeded, "", BrandMastercard},
		{"mastercard 2-series", "2223003122003222", "123", StatusSucceeded, "", BrandMastercard},
		{"amex with 4-digit CVC", "378282246310005", "1234", StatusSucceeded, "", BrandAmex},
		{"discover", "6011111111111117", "123", StatusSucceeded, "", BrandDiscover},
		{"unknown brand", "3056930009020004", "123", StatusSucceeded, "", BrandUnknown},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			svc, store, _ := newTestService(t)
			r := validRequest()
			r.Card.Number, r.Card.CVC = tt.number, tt.cvc
			c, created, err := svc.Charge(context.Background(), r)
			if err != nil || !created {
				t.Fatalf("charge: created %v, err %v", created, err)
			}
			want := Charge{
				ID: c.ID, OrderID: r.OrderID, UserID: r.UserID, Status: tt.status, DeclineCode: tt.declineCode,
				Amount: r.Amount, Card: CardInfo{Brand: tt.brand, Last4: tt.number[len(tt.number)-4:]}, CreatedAt: t0,
			}
			if c != want || !chargeIDPattern.MatchString(c.ID) {
				t.Fatalf("charge = %+v, want %+v", c, want)
			}
			var kept int64
			if tt.status == StatusSucceeded {
				kept = r.Amount.Amount
			}
			if b, _ := store.Balance(context.Background(), r.OrderID); b.Net() != kept {
				t.Fatalf("ledger keeps %d, want %d", b.Net(), kept)
			}
		})
	}
}

func TestCardExpiresAtTheEndOfItsMonth(t *testing.T) {
	svc, _, _ := newTestService(t)
	r := validRequest()
	r.Card.ExpYear, r.Card.ExpMonth = t0.Year(), int(t0.Month())
	if _, _, err := svc.Charge(context.Background(), r); err != nil {
		t.Fatalf("card expiring this month: %v", err)
	}
}

func TestChargeIsIdempotent(t *testing.T) {
	ctx := context.Background()
	for _, number := range []string{TestCardSucceeds, TestCardDeclined} {
		t.Run(number, func(t *testing.T) {
			svc, store, proc := newTestService(t)
			r := validRequest()
			r.Card.Number = number
			first, created, err := svc.Charge(ctx, r)
			if err != nil || !created {
				t.Fatalf("first charge: created %v, err %v", created, err)
			}
			again, created, err := svc.Charge(ctx, r)
			if err != nil || created || again != first {
				t.Fatalf("repeat = %+v, %v, %v; want the first charge, not created", again, created, err)
			}
			if proc.calls.Load() != 1 {
				t.Fatalf("processor called %d times, want 1", proc.calls.Load())
			}
			b, _ := store.Balance(ctx, r.OrderID)
			if first.Status == StatusSucceeded && b.Charged != r.Amount.Amount || first.Status == StatusDeclined && b.Charged != 0 {
				t.Fatalf("balance %+v after a repeated %s charge", b, first.Status)
			}
		})
	}
}

func TestChargeMismatch(t *testing.T) {
	tests := []struct {
		name   string
		change func(r *ChargeRequest)
	}{
		{"different amount", func(r *ChargeRequest) { r.Amount.Amount++ }},
		{"different currency", func(r *ChargeRequest) { r.Amount.Currency = "USD" }},
		{"different card", func(r *ChargeRequest) { r.Card.Number = "5555555555554444" }},
		{"different user", func(r *ChargeRequest) { r.UserID = "user-2" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			svc, store, _ := newTestService(t)
			ctx := context.Background()
			first, _, err := svc.Charge(ctx, validRequest())
			if err != nil {
				t.Fatal(err)
			}
			r := validRequest()
			tt.change(&r)
			if _, _, err := svc.Charge(ctx, r); !errors.Is(err, ErrIdempotencyMismatch) || errs.From(err).Kind.Status() != 409 {
				t.Fatalf("err = %v, want 409 idempotency_mismatch", err)
			}
			if c, _ := store.ChargeByOrder(ctx, r.OrderID); c != first {
				t.Fatalf("stored charge changed: %+v", c)
			}
			if b, _ := store.Balance(ctx, r.OrderID); b.Charged != first.Amount.Amount {
				t.Fatalf("balance %+v", b)
			}
		})
	}
}

func TestConcurrentChargesOfOneOrderMoveMoneyOnce(t *testing.T) {
	svc, store, _ := newTestService(t)
	ctx := context.Background()
	var (
		wg      sync.WaitGroup
		created atomic.Int32
		ids     sync.Map
	)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, ok, err := svc.Charge(ctx, validRequest())
			if err != nil {
				t.Error(err)
				return
			}
			if ok {
				created.Add(1)
			}
			ids.Store(c.ID, true)
		}()
	}
	wg.Wait()
	n := 0
	ids.Range(func(any, any) bool { n++; return true })
	if created.Load() != 1 || n != 1 {
		t.Fatalf("%d charges created, %d distinct IDs answered; want 1 and 1", created.Load(), n)
	}
	if b, _ := store.Balance(ctx, "order-1"); b.Charged != 1999 {
		t.Fatalf("charged %d, want 1999", b.Charged)
	}
}

func TestRefund(t *testing.T) {
	ctx := context.Background()
	svc, store, _ := newTestService(t)
	c, _, err := svc.Charge(ctx, validRequest())
	if err != nil {
		t.Fatal(err)
	}
	r, refunded, err := svc.Refund(ctx, c.ID)
	if err != nil || !refunded || r.Status != StatusRefunded || !r.RefundedAt.Equal(t0) {
		t.Fatalf("refund = %+v, %v, %v", r, refunded, err)
	}
	again, refunded, err := svc.Refund(ctx, c.ID)
	if err != nil || refunded || again != r {
		t.Fatalf("second refund = %+v, %v, %v; want the first, not refunded", again, refunded, err)
	}
	if b, _ := store.Balance(ctx, c.OrderID); b != (Balance{Currency: "EUR", Charged: 1999, Refunded: 1999}) {
		t.Fatalf("balance %+v", b)
	}
	// A refunded order charged again is a repeat: it answers the refunded charge.
	if got, created, err := svc.Charge(ctx, validRequest()); err != nil || created || got != r {
		t.Fatalf("charge after refund = %+v, %v, %v", got, created, err)
	}
}

func TestRefundBadInput(t *testing.T) {
	ctx := context.Background()
	svc, store, _ := newTestService(t)
	r := validRequest()
	r.Card.Number = TestCardDeclined
	declined, _, err := svc.Charge(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		id     string
		want   *errs.Error
		status int
	}{
		{"unknown charge", newChargeID(), ErrChargeNotFound, 404},
		{"malformed ID", "not-a-charge", ErrChargeNotFound, 404},
		{"empty ID", "", ErrChargeNotFound, 404},
		{"declined charge", declined.ID, ErrChargeNotRefundable, 409},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := svc.Refund(ctx, tt.id)
			if !errors.Is(err, tt.want) || errs.From(err).Kind.Status() != tt.status {
				t.Fatalf("err = %v, want %d %v", err, tt.status, tt.want)
			}
		})
	}
	if c, _ := store.Charge(ctx, declined.ID); c != declined {
		t.Fatalf("declined charge changed: %+v", c)
	}
	if b, _ := store.Balance(ctx, declined.OrderID); b != (Balance{}) {
		t.Fatalf("balance %+v, want none", b)
	}
}

func TestGetAndListCharges(t *testing.T) {
	ctx := context.Background()
	svc, _, _ := newTestService(t)
	c, _, err := svc.Charge(ctx, validRequest())
	if err != nil {
		t.Fatal(err)
	}
	if got, err := svc.GetCharge(ctx, c.ID); err != nil || got != c {
		t.Fatalf("get = %+v, %v", got, err)
	}
	for _, id := range []string{newChargeID(), "x", ""} {
		if _, err := svc.GetCharge(ctx, id); !errors.Is(err, ErrChargeNotFound) {
			t.Fatalf("get %q: err = %v", id, err)
		}
	}
	if list, err := svc.ListCharges(ctx, c.OrderID); err != nil || len(list) != 1 || list[0] != c {
		t.Fatalf("list = %+v, %v", list, err)
	}
	if list, err := svc.ListCharges(ctx, "other-order"); err != nil || list == nil || len(list) != 0 {
		t.Fatalf("list of an uncharged order = %#v, %v; want empty", list, err)
	}
	if _, err := svc.ListCharges(ctx, ""); !errors.Is(err, ErrInvalidOrderID) {
		t.Fatalf("list without order ID: err = %v", err)
	}
}

// failingProcessor fails its first failures calls, then delegates.
type failingProcessor struct {
	failures atomic.Int32
	next     Processor
}

func (p *failingProcessor) Authorize(ctx context.Context, card Card, amount Money) (Authorization, error) {
	if p.failures.Add(-1) >= 0 {
		return Authorization{}, ErrProcessorUnavailable
	}
	return p.next.Authorize(ctx, card, amount)
}

func TestProcessorFailureStoresNothing(t *testing.T) {
	ctx := context.Background()
	sim, _ := NewSimulatedProcessor(SimulatedConfig{Seed: 1})
	proc := &failingProcessor{next: sim}
	proc.failures.Store(1)
	store := NewMemoryStore()
	svc := NewService(store, proc, now)
	_, _, err := svc.Charge(ctx, validRequest())
	if !errors.Is(err, ErrProcessorUnavailable) || errs.From(err).Kind.Status() != 503 {
		t.Fatalf("err = %v, want 503 processor_unavailable", err)
	}
	if _, err := store.ChargeByOrder(ctx, "order-1"); !errors.Is(err, ErrChargeNotFound) {
		t.Fatalf("a charge was stored after a processor failure: %v", err)
	}
	// So the retry, with the same order ID, charges.
	if c, created, err := svc.Charge(ctx, validRequest()); err != nil || !created || c.Status != StatusSucceeded {
		t.Fatalf("retry = %+v, %v, %v", c, created, err)
	}
}

func TestSimulatedProcessor(t *testing.T) {
	ctx := context.Background()
	card := validRequest().Card
	if _, err := NewSimulatedProcessor(SimulatedConfig{FailureRate: 1.5}); err == nil {
		t.Fatal("failure rate 1.5 accepted")
	}
	if _, err := NewSimulatedProcessor(SimulatedConfig{FailureRate: -0.1}); err == nil {
		t.Fatal("failure rate -0.1 accepted")
	}
	if _, err := NewSimulatedProcessor(SimulatedConfig{Latency: -time.Second}); err == nil {
		t.Fatal("negative latency accepted")
	}

	t.Run("failure rate", func(t *testing.T) {
		failures := func(seed uint64) int {
			p, err := NewSimulatedProcessor(SimulatedConfig{FailureRate: 0.3, Seed: seed})
			if err != nil {
				t.Fatal(err)
			}
			n := 0
			for range 1000 {
				if _, err := p.Authorize(ctx, card, Money{1, "EUR"}); errors.Is(err, ErrProcessorUnavailable) {
					n++
				}
			}
			return n
		}
		n := failures(7)
		if n < 230 || n > 370 {
			t.Fatalf("%d of 1000 calls failed at rate 0.3", n)
		}
		if again := failures(7); again != n {
			t.Fatalf("same seed, %d then %d failures", n, again)
		}
	})

	t.Run("latency", func(t *testing.T) {
		p, err := NewSimulatedProcessor(SimulatedConfig{Latency: 20 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		begin := time.Now()
		if a, err := p.Authorize(ctx, card, Money{1, "EUR"}); err != nil || !a.Approved {
			t.Fatalf("authorize = %+v, %v", a, err)
		}
		if took := time.Since(begin); took < 20*time.Millisecond {
			t.Fatalf("answered in %v, before the latency", took)
		}
		short, cancel := context.WithTimeout(ctx, time.Millisecond)
		defer cancel()
		if _, err := p.Authorize(short, card, Money{1, "EUR"}); !errors.Is(err, ErrProcessorUnavailable) {
			t.Fatalf("caller gone: err = %v", err)
		}
	})
}

func TestCardNeverFormatsItsNumber(t *testing.T) {
	r := validRequest()
	for _, format := range []string{"%v", "%+v", "%#v", "%s"} {
		for _, v := range []any{r, r.Card, &r} {
			s := fmt.Sprintf(format, v)
			if strings.Contains(s, r.Card.Number) || strings.Contains(s, "123") {
				t.Fatalf("%s of %T = %q shows card data", format, v, s)
			}
		}
	}
}
