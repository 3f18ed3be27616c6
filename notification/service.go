// Package notification emails customers about their orders: it consumes the order
// events the order service publishes through its outbox, sends one email per event
// however often the event is delivered, and shows a user the emails they were sent.
package notification

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/mail"
	"strings"
	"time"

	"github.com/kitshop/kitshop/pkg/auth"
	"github.com/kitshop/kitshop/pkg/errs"
	"github.com/kitshop/kitshop/pkg/outbox"
)

// The order events this service understands (outbox event types and routing keys).
const (
	EventOrderConfirmed = "order.confirmed"
	EventOrderCancelled = "order.cancelled"
)

// Notification types.
const (
	TypeOrderConfirmed = "order_confirmed"
	TypeOrderCancelled = "order_cancelled"
)

// Money is an amount in minor units of an ISO 4217 currency.
type Money struct {
	Amount   int64  `json:"amount"`
	Currency string `json:"currency"`
}

// OrderItem is one line of an order event.
type OrderItem struct {
	SKU       string `json:"sku"`
	Name      string `json:"name"`
	Quantity  int    `json:"quantity"`
	UnitPrice Money  `json:"unit_price"`
}

// OrderEvent is the data of order.confirmed and order.cancelled events.
type OrderEvent struct {
	OrderID string      `json:"order_id"`
	UserID  string      `json:"user_id"`
	Email   string      `json:"email"`
	Items   []OrderItem `json:"items"`
	Total   Money       `json:"total"`
	Status  string      `json:"status"`
}

// Notification is an email sent (or, without SMTP, recorded) for one event.
type Notification struct {
	ID      string
	UserID  string
	OrderID string
	EventID string
	Type    string
	To      string
	Subject string
	Body    string
	SentAt  time.Time
}

// Outcome says what handling an event did.
type Outcome int

// Outcomes of HandleEvent.
const (
	Sent      Outcome = iota + 1 // the email was sent and recorded
	Duplicate                    // the event was handled before; nothing was sent
)

// Domain errors. They are permanent: the same event fails the same way every time.
var (
	ErrUnknownEventType = errs.E(errs.Invalid, "unknown_event_type", "not an order event this service handles")
	ErrMalformedEvent   = errs.E(errs.Invalid, "malformed_event", "the event is not a valid order event")
)

// MaxList is how many notifications ListNotifications returns: the newest.
const MaxList = 100

// maxField bounds the text fields of an event.
const maxField = 200

// Service is the notification API.
type Service interface {
	// HandleEvent sends the email an order event calls for, once per event ID: an event
	// handled before is a Duplicate and sends nothing.
	HandleEvent(ctx context.Context, e outbox.Event) (Outcome, error)
	// ListNotifications returns the caller's notifications, newest first.
	ListNotifications(ctx context.Context) ([]Notification, error)
}

type service struct {
	store  Store
	mailer Mailer
	now    func() time.Time
}

// NewService returns the service recording emails in store and sending them with
// mailer. now is the clock (time.Now in production).
func NewService(store Store, mailer Mailer, now func() time.Time) Service {
	return &service{store: store, mailer: mailer, now: now}
}

func (s *service) HandleEvent(ctx context.Context, e outbox.Event) (Outcome, error) {
	var typ string
	switch e.Type {
	case EventOrderConfirmed:
		typ = TypeOrderConfirmed
	case EventOrderCancelled:
		typ = TypeOrderCancelled
	default:
		return 0, ErrUnknownEventType.WithMessage("event type %q is not one this service handles", e.Type)
	}
	if e.ID == "" || len(e.ID) > maxField {
		return 0, ErrMalformedEvent.WithMessage("the event has no valid id")
	}
	var data OrderEvent
	if err := json.Unmarshal(e.Data, &data); err != nil {
		return 0, ErrMalformedEvent.WithMessage("the event data is not an order: %v", err)
	}
	to, err := validate(data)
	if err != nil {
		return 0, err
	}
	n := Notification{
		ID:      outbox.NewID(),
		UserID:  data.UserID,
		OrderID: data.OrderID,
		EventID: e.ID,
		Type:    typ,
		To:      to,
		Subject: subject(typ, data.OrderID),
		Body:    body(typ, data),
		SentAt:  s.now().UTC(),
	}
	err = s.store.Insert(ctx, n, func(ctx context.Context) error {
		return s.mailer.Send(ctx, Email{To: n.To, Subject: n.Subject, Body: n.Body})
	})
	if errors.Is(err, ErrDuplicateEvent) {
		return Duplicate, nil
	}
	if err != nil {
		return 0, err
	}
	return Sent, nil
}

// validate checks what the email needs and returns the recipient's bare address.
func validate(d OrderEvent) (string, error) {
	switch {
	case d.OrderID == "" || len(d.OrderID) > maxField || strings.ContainsAny(d.OrderID, "\r\n"):
		return "", ErrMalformedEvent.WithMessage("the event has no valid order_id")
	case d.UserID == "" || len(d.UserID) > maxField:
		return "", ErrMalformedEvent.WithMessage("the event has no valid user_id")
	case d.Total.Currency == "":
		return "", ErrMalformedEvent.WithMessage("the event has no total")
	}
	addr, err := mail.ParseAddress(d.Email)
	if err != nil || len(addr.Address) > maxField {
		return "", ErrMalformedEvent.WithMessage("the event has no valid email")
	}
	return addr.Address, nil
}

func subject(typ, orderID string) string {
	if typ == TypeOrderCancelled {
		return "Your kitshop order " + orderID + " was cancelled"
	}
	return "Your kitshop order " + orderID + " is confirmed"
}

// body is the plain text of the email: the order number, its lines and its total.
func body(typ string, d OrderEvent) string {
	var b strings.Builder
	b.WriteString("Hello,\n\n")
	if typ == TypeOrderCancelled {
		fmt.Fprintf(&b, "your order %s was cancelled; any payment is refunded.\n\n", d.OrderID)
	} else {
		fmt.Fprintf(&b, "thank you: your order %s is confirmed.\n\n", d.OrderID)
	}
	for _, it := range d.Items {
		line := Money{Amount: it.UnitPrice.Amount * int64(it.Quantity), Currency: it.UnitPrice.Currency}
		fmt.Fprintf(&b, "  %d x %s (%s)  %s\n", it.Quantity, oneLine(it.Name), oneLine(it.SKU), line)
	}
	fmt.Fprintf(&b, "\nTotal: %s\n\nkitshop\n", d.Total)
	return b.String()
}

// oneLine keeps event text from adding lines to the email.
func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '\r' || r == '\n' {
			return ' '
		}
		return r
	}, s)
}

// String formats m with two decimals, as the shop's currencies have.
func (m Money) String() string {
	sign, amount := "", m.Amount
	if amount < 0 {
		sign, amount = "-", -amount
	}
	return fmt.Sprintf("%s%d.%02d %s", sign, amount/100, amount%100, m.Currency)
}

func (s *service) ListNotifications(ctx context.Context) ([]Notification, error) {
	caller, ok := auth.CallerFrom(ctx)
	if !ok || caller.UserID == "" {
		return nil, auth.ErrNoToken
	}
	return s.store.ListByUser(ctx, caller.UserID, MaxList)
}
