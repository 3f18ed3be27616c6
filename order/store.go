package order

import (
	"context"
	"time"

	"github.com/kitshop/kitshop/pkg/errs"
	"github.com/kitshop/kitshop/pkg/outbox"
)

// CartLine is a stored line of a cart: a product and a quantity, no price.
type CartLine struct {
	SKU      string
	Quantity int
	AddedAt  time.Time
}

// IdempotencyKey is a client's Idempotency-Key, per user, with the fingerprint of the
// request it was first used with. A key stored before NotBefore has expired and may be
// used again.
type IdempotencyKey struct {
	UserID    string
	Key       string
	Hash      string
	NotBefore time.Time
}

// Lease is a driver's hold on an order's saga: only the holder of Token may move the
// saga on, and nobody else may take it before Until.
type Lease struct {
	Token string
	Until time.Time
}

// Change moves an order's saga from step From to Status and Step, in one transaction
// with the outbox Event (if any) and the removal of the order's lines from its owner's
// cart (if ClearCart).
type Change struct {
	From           string
	Status         string
	Step           string
	ChargeID       string // kept when empty
	FailureCode    string
	FailureMessage string
	Event          *outbox.Event
	ClearCart      bool
}

// Store errors.
var (
	// ErrLeaseHeld: another driver holds the order's saga.
	ErrLeaseHeld = errs.E(errs.Conflict, "saga_busy", "another driver holds this order's saga")
	// ErrStale: the lease was lost or the order moved on; the driver must stop.
	ErrStale = errs.E(errs.Conflict, "saga_stale", "the order's saga moved on without this driver")
)

// Store keeps carts, orders with their saga state, idempotency keys and the outbox.
type Store interface {
	// CartLines returns the user's cart, oldest line first.
	CartLines(ctx context.Context, userID string) ([]CartLine, error)
	// SetCartLine sets the quantity of a line, adding it if new (ErrCartFull when the
	// cart already has maxLines lines); quantity 0 removes the line.
	SetCartLine(ctx context.Context, userID, sku string, quantity, maxLines int, now time.Time) error

	// CreateOrder stores o (pending, held by lease) under key, in one transaction.
	// When the key is already in use (and not expired) it stores nothing and returns
	// the key's order with created false, or ErrIdempotencyMismatch when the key was
	// used with another request. Concurrent calls with one key create one order.
	CreateOrder(ctx context.Context, o Order, key IdempotencyKey, lease Lease) (stored Order, created bool, err error)
	// OrderByKey returns the order a live key was used for, ErrIdempotencyMismatch when
	// it was used with another request, or ErrOrderNotFound when it is unused.
	OrderByKey(ctx context.Context, key IdempotencyKey) (Order, error)
	// Order returns an order or ErrOrderNotFound.
	Order(ctx context.Context, id string) (Order, error)
	// ListOrders returns the user's newest orders first, at most limit.
	ListOrders(ctx context.Context, userID string, limit int) ([]Order, error)

	// Claim takes the lease of order id when nobody holds it at now (ErrLeaseHeld).
	Claim(ctx context.Context, id string, lease Lease, now time.Time) (Order, error)
	// ClaimStale takes, with lease, up to limit orders whose saga is unfinished (a
	// pending order, or a cancellation under way) and whose lease has run out at now,
	// longest untouched first. Concurrent callers never take the same order.
	ClaimStale(ctx context.Context, lease Lease, now time.Time, limit int) ([]Order, error)
	// Touch extends the lease of its holder (ErrStale for anyone else).
	Touch(ctx context.Context, id string, lease Lease) error
	// Advance applies c to the order if token holds its lease and the order is at
	// step c.From (ErrStale otherwise), leaving the lease held until leaseUntil.
	Advance(ctx context.Context, id, token string, c Change, now, leaseUntil time.Time) (Order, error)
	// CountPending counts the pending orders.
	CountPending(ctx context.Context) (int, error)

	// PurgeIdempotencyKeys forgets the keys stored before before.
	PurgeIdempotencyKeys(ctx context.Context, before time.Time) (int, error)
	// Events returns the outbox events written about an order, oldest first.
	Events(ctx context.Context, orderID string) ([]outbox.Event, error)
}
