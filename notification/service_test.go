package notification

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kitshop/kitshop/pkg/auth"
	"github.com/kitshop/kitshop/pkg/errs"
	"github.com/kitshop/kitshop/pkg/outbox"
)

// recorder is a Mailer that keeps what it sent and can be made to fail.
type recorder struct {
	mu   sync.Mutex
	sent []Email
	err  error
}

func (r *recorder) Send(_ context.Context, e Email) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		return r.err
	}
	r.sent = append(r.sent, e)
	return nil
}

func orderData() OrderEvent {
	return OrderEvent{
		OrderID: "ord-1", UserID: "u-1", Email: "Alice <alice@example.com>", Status: "confirmed",
		Items: []OrderItem{
			{SKU: "MUG-1", Name: "Mug", Quantity: 2, UnitPrice: Money{Amount: 1250, Currency: "EUR"}},
			{SKU: "TEE-2", Name: "T-shirt\nSubject: spam", Quantity: 1, UnitPrice: Money{Amount: 1999, Currency: "EUR"}},
		},
		Total: Money{Amount: 4499, Currency: "EUR"},
	}
}

func event(t *testing.T, typ string, data any) outbox.Event {
	t.Helper()
	e, err := outbox.NewEvent(typ, "ord-1", data, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func fixedNow() time.Time { return time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC) }

func TestHandleEventWritesTheEmail(t *testing.T) {
	mailer := &recorder{}
	s := NewService(NewMemoryStore(), mailer, fixedNow)
	ctx := auth.NewContext(context.Background(), auth.Caller{UserID: "u-1"})

	tests := []struct {
		typ, wantType, wantSubject, wantLine string
	}{
		{EventOrderConfirmed, TypeOrderConfirmed, "Your kitshop order ord-1 is confirmed", "your order ord-1 is confirmed"},
		{EventOrderCancelled, TypeOrderCancelled, "Your kitshop order ord-1 was cancelled", "your order ord-1 was cancelled"},
	}
	for _, tt := range tests {
		t.Run(tt.typ, func(t *testing.T) {
			e := event(t, tt.typ, orderData())
			outcome, err := s.HandleEvent(ctx, e)
			if err != nil || outcome != Sent {
				t.Fatalf("HandleEvent = %v, %v", outcome, err)
			}
			mail := mailer.sent[len(mailer.sent)-1]
			if mail.To != "alice@example.com" || mail.Subject != tt.wantSubject {
				t.Fatalf("email %+v", mail)
			}
			for _, want := range []string{tt.wantLine, "2 x Mug (MUG-1)  25.00 EUR", "1 x T-shirt Subject: spam (TEE-2)  19.99 EUR", "Total: 44.99 EUR"} {
				if !strings.Contains(mail.Body, want) {
					t.Errorf("body lacks %q:\n%s", want, mail.Body)
				}
			}
			list, err := s.ListNotifications(ctx)
			if err != nil {
				t.Fatal(err)
			}
			var n Notification
			for _, candidate := range list {
				if candidate.EventID == e.ID {
					n = candidate
				}
			}
			if n.Type != tt.wantType || n.OrderID != "ord-1" || n.UserID != "u-1" ||
				n.Body != mail.Body || !n.SentAt.Equal(fixedNow()) {
				t.Fatalf("recorded %+v", n)
			}

			outcome, err = s.HandleEvent(ctx, e)
			if err != nil || outcome != Duplicate {
				t.Fatalf("redelivered: HandleEvent = %v, %v; want Duplicate", outcome, err)
			}
		})
	}
	if len(mailer.sent) != 2 {
		t.Fatalf("sent %d emails, want 2", len(mailer.sent))
	}
}

func TestHandleEventRefusesWhatItCannotMail(t *testing.T) {
	edit := func(f func(*OrderEvent)) OrderEvent {
		d := orderData()
		f(&d)
		return d
	}
	tests := []struct {
		name string
		e    func(t *testing.T) outbox.Event
		want error
	}{
		{"unknown type", func(t *testing.T) outbox.Event { return event(t, "order.shipped", orderData()) }, ErrUnknownEventType},
		{"no id", func(t *testing.T) outbox.Event {
			e := event(t, EventOrderConfirmed, orderData())
			e.ID = ""
			return e
		}, ErrMalformedEvent},
		{"data not an object", func(t *testing.T) outbox.Event { return event(t, EventOrderConfirmed, []int{1}) }, ErrMalformedEvent},
		{"no order id", func(t *testing.T) outbox.Event {
			return event(t, EventOrderConfirmed, edit(func(d *OrderEvent) { d.OrderID = "" }))
		}, ErrMalformedEvent},
		{"order id with a line break", func(t *testing.T) outbox.Event {
			return event(t, EventOrderConfirmed, edit(func(d *OrderEvent) { d.OrderID = "o\r\nBcc: x@y.z" }))
		}, ErrMalformedEvent},
		{"no user", func(t *testing.T) outbox.Event {
			return event(t, EventOrderConfirmed, edit(func(d *OrderEvent) { d.UserID = "" }))
		}, ErrMalformedEvent},
		{"bad email", func(t *testing.T) outbox.Event {
			return event(t, EventOrderConfirmed, edit(func(d *OrderEvent) { d.Email = "not an address" }))
		}, ErrMalformedEvent},
		{"no total", func(t *testing.T) outbox.Event {
			return event(t, EventOrderConfirmed, edit(func(d *OrderEvent) { d.Total = Money{} }))
		}, ErrMalformedEvent},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mailer := &recorder{}
			s := NewService(NewMemoryStore(), mailer, fixedNow)
			_, err := s.HandleEvent(context.Background(), tt.e(t))
			if !errors.Is(err, tt.want) || !errs.IsBusiness(err) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if len(mailer.sent) != 0 {
				t.Fatalf("sent %+v", mailer.sent)
			}
		})
	}
}

func TestHandleEventMailerFailureIsRetryable(t *testing.T) {
	mailer := &recorder{err: errors.New("smtp: connection refused")}
	s := NewService(NewMemoryStore(), mailer, fixedNow)
	e := event(t, EventOrderConfirmed, orderData())
	if _, err := s.HandleEvent(context.Background(), e); err == nil || errs.IsBusiness(err) {
		t.Fatalf("err = %v, want a failure that is not the event's fault", err)
	}
	mailer.err = nil
	if outcome, err := s.HandleEvent(context.Background(), e); err != nil || outcome != Sent {
		t.Fatalf("after recovery: %v, %v", outcome, err)
	}
}

func TestListNotificationsNeedsACaller(t *testing.T) {
	s := NewService(NewMemoryStore(), RecordOnly{}, fixedNow)
	if _, err := s.ListNotifications(context.Background()); !errors.Is(err, auth.ErrNoToken) {
		t.Fatalf("err = %v", err)
	}
}

func TestOrderEventJSON(t *testing.T) {
	// The wire form agreed with the order service.
	raw := `{"order_id":"o","user_id":"u","email":"a@b.c","items":[{"sku":"s","name":"n","quantity":1,
		"unit_price":{"amount":5,"currency":"EUR"}}],"total":{"amount":5,"currency":"EUR"},"status":"confirmed"}`
	var d OrderEvent
	dec := json.NewDecoder(strings.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&d); err != nil {
		t.Fatal(err)
	}
	if d.Items[0].UnitPrice.Amount != 5 || d.Total.Currency != "EUR" || d.Status != "confirmed" {
		t.Fatalf("%+v", d)
	}
}

func TestMoneyString(t *testing.T) {
	for m, want := range map[Money]string{
		{Amount: 0, Currency: "EUR"}:      "0.00 EUR",
		{Amount: 5, Currency: "EUR"}:      "0.05 EUR",
		{Amount: 123456, Currency: "USD"}: "1234.56 USD",
		{Amount: -250, Currency: "EUR"}:   "-2.50 EUR",
	} {
		if got := m.String(); got != want {
			t.Errorf("%+v = %q, want %q", m, got, want)
		}
	}
}
