// Package payment charges cards for orders through a card processor and refunds them.
// Every charge is keyed by its order ID, so repeating a charge or a refund moves money
// once; every movement of money is a row of a ledger.
package payment

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"regexp"
	"strings"
	"time"

	"github.com/kitshop/kitshop/pkg/errs"
)

// Money is an amount in minor units (cents) of an ISO 4217 currency.
type Money struct {
	Amount   int64  `json:"amount"`
	Currency string `json:"currency"`
}

// Card is what the customer typed. It lives only as long as a charge request: the
// store, log lines and responses see its CardInfo, never the number or the CVC.
type Card struct {
	Number   string
	ExpMonth int
	ExpYear  int
	CVC      string
}

// String keeps the number and CVC out of anything that formats a Card with %v or %s.
func (c Card) String() string { return c.Info().String() }

// GoString does the same for %#v.
func (c Card) GoString() string { return c.String() }

// Info is the part of a card that may be kept: its brand and last four digits.
func (c Card) Info() CardInfo {
	last4 := c.Number
	if len(last4) > 4 {
		last4 = last4[len(last4)-4:]
	}
	return CardInfo{Brand: brandOf(c.Number), Last4: last4}
}

// CardInfo is what is stored and shown of a card.
type CardInfo struct {
	Brand string
	Last4 string
}

func (i CardInfo) String() string { return i.Brand + " ending " + i.Last4 }

// Card brands, recognised from the number's prefix.
const (
	BrandVisa       = "visa"
	BrandMastercard = "mastercard"
	BrandAmex       = "amex"
	BrandDiscover   = "discover"
	BrandUnknown    = "unknown"
)

// brandOf tells the brand from the issuer prefix of a card number.
func brandOf(number string) string {
	prefix := func(n int) int {
		if len(number) < n {
			return -1
		}
		v := 0
		for _, d := range number[:n] {
			if d < '0' || d > '9' {
				return -1
			}
			v = v*10 + int(d-'0')
		}
		return v
	}
	switch p2, p3, p4 := prefix(2), prefix(3), prefix(4); {
	case strings.HasPrefix(number, "4"):
		return BrandVisa
	case p2 >= 51 && p2 <= 55, p4 >= 2221 && p4 <= 2720:
		return BrandMastercard
	case p2 == 34 || p2 == 37:
		return BrandAmex
	case p4 == 6011, p2 == 65, p3 >= 644 && p3 <= 649:
		return BrandDiscover
	}
	return BrandUnknown
}

// Charge statuses. A charge is created succeeded or declined; a succeeded charge can be
// refunded (in full) once.
const (
	StatusSucceeded = "succeeded"
	StatusDeclined  = "declined"
	StatusRefunded  = "refunded"
)

// Decline codes.
const (
	DeclineCardDeclined      = "card_declined"
	DeclineInsufficientFunds = "insufficient_funds"
)

// Charge is one charge of one order. A declined charge is kept too, so that repeating
// it answers the same decline.
type Charge struct {
	ID          string
	OrderID     string
	UserID      string
	Status      string
	DeclineCode string // set when declined
	Amount      Money
	Card        CardInfo
	CreatedAt   time.Time
	RefundedAt  time.Time // zero unless refunded
}

// ChargeRequest asks to charge a card for an order.
type ChargeRequest struct {
	OrderID string
	UserID  string
	Amount  Money
	Card    Card
}

// Domain errors.
var (
	ErrInvalidOrderID       = errs.E(errs.Invalid, "invalid_order_id", "an order ID is 1-64 letters, digits, '_' or '-'")
	ErrInvalidUserID        = errs.E(errs.Invalid, "invalid_user_id", "a user ID is 1-64 letters, digits, '_' or '-'")
	ErrInvalidAmount        = errs.E(errs.Invalid, "invalid_amount", "an amount is 1 to 100000000 minor units")
	ErrUnsupportedCurrency  = errs.E(errs.Invalid, "unsupported_currency", "the currency must be one of EUR, USD, GBP, CHF, SEK")
	ErrInvalidCardNumber    = errs.E(errs.Invalid, "invalid_card_number", "the card number is not a valid card number")
	ErrInvalidExpiry        = errs.E(errs.Invalid, "invalid_expiry", "exp_month is 1-12 and exp_year a four-digit year at most 20 years ahead")
	ErrCardExpired          = errs.E(errs.Invalid, "card_expired", "the card has expired")
	ErrInvalidCVC           = errs.E(errs.Invalid, "invalid_cvc", "the CVC is 3 digits (4 for American Express)")
	ErrChargeNotFound       = errs.E(errs.NotFound, "charge_not_found", "no charge with that ID")
	ErrIdempotencyMismatch  = errs.E(errs.Conflict, "idempotency_mismatch", "this order ID was already charged with a different amount, card or user")
	ErrChargeNotRefundable  = errs.E(errs.Conflict, "charge_not_refundable", "a declined charge moved no money and cannot be refunded")
	ErrProcessorUnavailable = errs.E(errs.Unavailable, "processor_unavailable", "the card processor is unavailable; retry with the same order ID")
)

// Limits.
const (
	MaxAmount = 100000000
	// maxExpiryYears bounds how far ahead an expiry date may be; further is a typo.
	maxExpiryYears = 20
)

// supportedCurrency reports whether code is one of the accepted ISO 4217 currencies,
// all with two minor-unit digits.
func supportedCurrency(code string) bool {
	switch code {
	case "EUR", "USD", "GBP", "CHF", "SEK":
		return true
	}
	return false
}

// Service is the payment API, called by the order service.
type Service interface {
	// Charge charges the card for the order. A declined card is not an error: the
	// charge comes back with status declined and a decline code. Repeating a charge
	// with the same order ID returns the first charge with created false and moves no
	// money; repeating it with another amount, currency, card or user is
	// ErrIdempotencyMismatch.
	Charge(ctx context.Context, r ChargeRequest) (c Charge, created bool, err error)
	// Refund refunds a succeeded charge in full. Refunding it again returns it with
	// refunded false and moves no money.
	Refund(ctx context.Context, id string) (c Charge, refunded bool, err error)
	GetCharge(ctx context.Context, id string) (Charge, error)
	// ListCharges returns the charges of an order, oldest first.
	ListCharges(ctx context.Context, orderID string) ([]Charge, error)
}

// Authorization is a processor's answer to a charge: approved, or declined with a code.
type Authorization struct {
	Approved    bool
	DeclineCode string
}

// Processor authorizes card payments. An error is a failure of the processor (not a
// decline) and means no money moved.
type Processor interface {
	Authorize(ctx context.Context, card Card, amount Money) (Authorization, error)
}

type service struct {
	store     Store
	processor Processor
	now       func() time.Time
}

// NewService returns the payment service. now is the clock (time.Now in production).
func NewService(store Store, processor Processor, now func() time.Time) Service {
	return &service{store: store, processor: processor, now: now}
}

var (
	idPattern       = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
	chargeIDPattern = regexp.MustCompile(`^ch_[0-9a-f]{24}$`)
	digits          = regexp.MustCompile(`^[0-9]+$`)
)

func (s *service) Charge(ctx context.Context, r ChargeRequest) (Charge, bool, error) {
	if err := validate(r, s.now().UTC()); err != nil {
		return Charge{}, false, err
	}
	card := r.Card.Info()
	// A repeat is answered from the store and never reaches the processor.
	existing, err := s.store.ChargeByOrder(ctx, r.OrderID)
	switch {
	case err == nil:
		return replay(existing, r, card)
	case !errors.Is(err, ErrChargeNotFound):
		return Charge{}, false, err
	}

	auth, err := s.processor.Authorize(ctx, r.Card, r.Amount)
	if err != nil {
		return Charge{}, false, err
	}
	c := Charge{
		ID:        newChargeID(),
		OrderID:   r.OrderID,
		UserID:    r.UserID,
		Status:    StatusSucceeded,
		Amount:    r.Amount,
		Card:      card,
		CreatedAt: s.now().UTC().Truncate(time.Microsecond),
	}
	if !auth.Approved {
		c.Status, c.DeclineCode = StatusDeclined, auth.DeclineCode
	}
	stored, created, err := s.store.CreateCharge(ctx, c)
	if err != nil || created {
		return stored, created, err
	}
	// A concurrent charge of the same order was stored first. Its authorization is the
	// one captured; ours is never recorded in the ledger, so no money moves for it.
	return replay(stored, r, card)
}

// replay answers a repeated charge with the stored one, if the request is the same.
func replay(c Charge, r ChargeRequest, card CardInfo) (Charge, bool, error) {
	if c.Amount != r.Amount || c.UserID != r.UserID || c.Card != card {
		return Charge{}, false, ErrIdempotencyMismatch
	}
	return c, false, nil
}

// validate checks a charge request; now decides whether the card has expired.
func validate(r ChargeRequest, now time.Time) error {
	switch {
	case !idPattern.MatchString(r.OrderID):
		return ErrInvalidOrderID
	case !idPattern.MatchString(r.UserID):
		return ErrInvalidUserID
	case r.Amount.Amount < 1 || r.Amount.Amount > MaxAmount:
		return ErrInvalidAmount
	case !supportedCurrency(r.Amount.Currency):
		return ErrUnsupportedCurrency
	}
	return r.Card.Validate(now)
}

// Validate checks a card as a charge of it is checked, at now: a number of 12 to 19
// digits that passes the Luhn check, an expiry month that has not passed (a card is
// valid to the end of it) and is at most maxExpiryYears ahead, and a CVC of 3 digits,
// 4 for American Express. The order service checks a checkout's card with it before
// any stock is reserved.
func (c Card) Validate(now time.Time) error {
	switch {
	case len(c.Number) < 12 || len(c.Number) > 19 || !digits.MatchString(c.Number) || !luhn(c.Number):
		return ErrInvalidCardNumber
	case c.ExpMonth < 1 || c.ExpMonth > 12 || c.ExpYear < 2000 || c.ExpYear > now.Year()+maxExpiryYears:
		return ErrInvalidExpiry
	case c.ExpYear < now.Year() || c.ExpYear == now.Year() && c.ExpMonth < int(now.Month()):
		return ErrCardExpired
	}
	cvcLen := 3
	if brandOf(c.Number) == BrandAmex {
		cvcLen = 4
	}
	if len(c.CVC) != cvcLen || !digits.MatchString(c.CVC) {
		return ErrInvalidCVC
	}
	return nil
}

// luhn reports whether a string of digits passes the Luhn checksum.
func luhn(number string) bool {
	sum := 0
	for i := range len(number) {
		d := int(number[len(number)-1-i] - '0')
		if i%2 == 1 {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
	}
	return sum%10 == 0
}

func newChargeID() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	return "ch_" + hex.EncodeToString(b)
}

func (s *service) Refund(ctx context.Context, id string) (Charge, bool, error) {
	if !chargeIDPattern.MatchString(id) {
		return Charge{}, false, ErrChargeNotFound
	}
	c, refunded, err := s.store.Refund(ctx, id, s.now().UTC().Truncate(time.Microsecond))
	if err != nil {
		return Charge{}, false, err
	}
	if c.Status == StatusDeclined {
		return Charge{}, false, ErrChargeNotRefundable
	}
	return c, refunded, nil
}

func (s *service) GetCharge(ctx context.Context, id string) (Charge, error) {
	if !chargeIDPattern.MatchString(id) {
		return Charge{}, ErrChargeNotFound
	}
	return s.store.Charge(ctx, id)
}

func (s *service) ListCharges(ctx context.Context, orderID string) ([]Charge, error) {
	if !idPattern.MatchString(orderID) {
		return nil, ErrInvalidOrderID
	}
	c, err := s.store.ChargeByOrder(ctx, orderID)
	switch {
	case errors.Is(err, ErrChargeNotFound):
		return []Charge{}, nil
	case err != nil:
		return nil, err
	}
	return []Charge{c}, nil
}
