package inventory

import (
	"context"
	"time"
)

// Store keeps products and reservations. Every method that changes stock is atomic:
// no sequence of calls, however concurrent, can reserve more than is available.
type Store interface {
	// ListProducts returns up to limit products with SKU greater than after, in SKU
	// order: those of category, or every product when category is empty.
	ListProducts(ctx context.Context, category, after string, limit int) ([]Product, error)
	GetProduct(ctx context.Context, sku string) (Product, error)
	// CreateProduct fails with ErrSKUTaken when the SKU exists.
	CreateProduct(ctx context.Context, p Product) (Product, error)
	// SetStock fails with ErrStockBelowReserved when stock < reserved.
	SetStock(ctx context.Context, sku string, stock int, now time.Time) (Product, error)

	// Reserve holds every line (given in SKU order) or none, failing with ErrOutOfStock
	// or ErrProductNotFound. When orderID already has a reservation it changes nothing
	// and returns that one with created false.
	Reserve(ctx context.Context, orderID string, lines []Line, now, expiresAt time.Time) (r Reservation, created bool, err error)
	GetReservation(ctx context.Context, orderID string) (Reservation, error)
	// Commit moves a reserved, unexpired reservation to committed: its units leave
	// stock. A reserved one past its expiry is expired instead. Any other status is
	// returned unchanged.
	Commit(ctx context.Context, orderID string, now time.Time) (Reservation, error)
	// Release moves a reserved reservation to released (units back to available) and a
	// committed one too (units back to stock). An unknown order ID gets a released
	// reservation with no lines. Any other status is returned unchanged.
	Release(ctx context.Context, orderID string, now time.Time) (Reservation, error)
	// ExpireReservations expires up to limit reserved reservations whose expiry is not
	// after now and returns how many it expired.
	ExpireReservations(ctx context.Context, now time.Time, limit int) (int, error)
}
