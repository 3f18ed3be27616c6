package payment

import (
	"context"
	"time"
)

// Ledger entry kinds: a charge adds its amount to the order's balance, a refund takes
// it away.
const (
	KindCharge = "charge"
	KindRefund = "refund"
)

// Balance is what the ledger says an order paid: Charged minus Refunded is the money
// kept. Currency is empty when the order has no entries.
type Balance struct {
	Currency string
	Charged  int64
	Refunded int64
}

// Net is the money kept for the order.
func (b Balance) Net() int64 { return b.Charged - b.Refunded }

// Store keeps charges and the ledger. A charge's status and its ledger entries change
// together, atomically: the ledger never disagrees with the charges.
type Store interface {
	// CreateCharge stores c and, when it succeeded, its charge entry. When c's order
	// already has a charge it stores nothing and returns that one with created false,
	// however many calls race.
	CreateCharge(ctx context.Context, c Charge) (stored Charge, created bool, err error)
	// Charge fails with ErrChargeNotFound for an unknown ID.
	Charge(ctx context.Context, id string) (Charge, error)
	// ChargeByOrder fails with ErrChargeNotFound when the order has no charge.
	ChargeByOrder(ctx context.Context, orderID string) (Charge, error)
	// Refund moves a succeeded charge to refunded and writes its refund entry. A charge
	// in any other status is returned unchanged with refunded false.
	Refund(ctx context.Context, id string, now time.Time) (c Charge, refunded bool, err error)
	// Balance sums the order's ledger entries.
	Balance(ctx context.Context, orderID string) (Balance, error)
}
