// Package inventory is the catalogue and its stock: products, and reservations that hold
// stock for an order until it is committed (sold) or released.
package inventory

import (
	"context"
	"encoding/base64"
	"errors"
	"regexp"
	"sort"
	"time"
	"unicode/utf8"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"

	"github.com/kitshop/kitshop/pkg/errs"
)

// Money is an amount in minor units (cents) of an ISO 4217 currency.
type Money struct {
	Amount   int64  `json:"amount"`
	Currency string `json:"currency"`
}

// Product is a catalogue entry with its stock. Stock counts the units on hand,
// reserved ones included; Reserved are held for orders not yet committed.
type Product struct {
	SKU         string
	Name        string
	Description string
	Category    string // empty: uncategorised
	Price       Money
	Stock       int
	Reserved    int
	CreatedAt   time.Time
	UpdatedAt   time.Time
}

// Available is what can still be reserved.
func (p Product) Available() int { return p.Stock - p.Reserved }

// Page is one page of the catalogue; NextCursor is empty on the last page.
type Page struct {
	Products   []Product
	NextCursor string
}

// Line asks for a quantity of one product.
type Line struct {
	SKU      string `json:"sku"`
	Quantity int    `json:"quantity"`
}

// ReservedLine is a reserved line with the product's name and price at reservation time.
type ReservedLine struct {
	SKU       string `json:"sku"`
	Name      string `json:"name"`
	Quantity  int    `json:"quantity"`
	UnitPrice Money  `json:"unit_price"`
}

// Reservation statuses. A reservation is created reserved, then becomes committed
// (sold) or released (given back), or expired when its TTL passes uncommitted. Releasing
// a committed reservation returns its units to stock (an order cancelled after sale).
const (
	StatusReserved  = "reserved"
	StatusCommitted = "committed"
	StatusReleased  = "released"
	StatusExpired   = "expired"
)

// Reservation holds stock for one order, keyed by the order ID.
type Reservation struct {
	OrderID   string
	Status    string
	Lines     []ReservedLine
	ExpiresAt time.Time
	CreatedAt time.Time
	UpdatedAt time.Time
}

// Domain errors.
var (
	ErrInvalidSKU          = errs.E(errs.Invalid, "invalid_sku", "a SKU is 1-64 letters, digits, '.', '_' or '-'")
	ErrInvalidName         = errs.E(errs.Invalid, "invalid_name", "a product name is 1-200 characters")
	ErrInvalidDescription  = errs.E(errs.Invalid, "invalid_description", "a description is at most 2000 characters")
	ErrInvalidCategory     = errs.E(errs.Invalid, "invalid_category", "a category is empty or 1-32 lowercase letters, digits or '-', starting with a letter or digit")
	ErrInvalidPrice        = errs.E(errs.Invalid, "invalid_price", "a price is 1 to 100000000 minor units")
	ErrInvalidCurrency     = errs.E(errs.Invalid, "invalid_currency", "the shop sells in one currency")
	ErrInvalidStock        = errs.E(errs.Invalid, "invalid_stock", "stock is 0 to 1000000 units")
	ErrInvalidLimit        = errs.E(errs.Invalid, "invalid_limit", "limit is 1 to 100")
	ErrInvalidCursor       = errs.E(errs.Invalid, "invalid_cursor", "cursor is not one this service gave out")
	ErrInvalidOrderID      = errs.E(errs.Invalid, "invalid_order_id", "an order ID is 1-64 letters, digits, '_' or '-'")
	ErrNoLines             = errs.E(errs.Invalid, "no_lines", "a reservation needs 1 to 50 lines")
	ErrInvalidQuantity     = errs.E(errs.Invalid, "invalid_quantity", "a quantity is 1 to 10000")
	ErrDuplicateSKU        = errs.E(errs.Invalid, "duplicate_sku", "each SKU may appear once in a reservation")
	ErrProductNotFound     = errs.E(errs.NotFound, "product_not_found", "no product with that SKU")
	ErrSKUTaken            = errs.E(errs.Conflict, "sku_taken", "a product with that SKU exists")
	ErrStockBelowReserved  = errs.E(errs.Conflict, "stock_below_reserved", "stock cannot go below the units reserved for orders")
	ErrOutOfStock          = errs.E(errs.Unprocessable, "out_of_stock", "not enough stock")
	ErrReservationNotFound = errs.E(errs.NotFound, "reservation_not_found", "no reservation for that order")
	ErrReservationReleased = errs.E(errs.Conflict, "reservation_released", "the reservation was released")
	ErrReservationExpired  = errs.E(errs.Conflict, "reservation_expired", "the reservation expired")
	ErrIdempotencyMismatch = errs.E(errs.Conflict, "idempotency_mismatch", "this order ID already reserved different lines")
)

// Limits.
const (
	DefaultPageSize = 20
	MaxPageSize     = 100
	MaxLines        = 50
	MaxQuantity     = 10000
	MaxStock        = 1000000
	MaxPrice        = 100000000
)

// Service is the inventory API.
type Service interface {
	// ListProducts pages through the catalogue, or through one category of it.
	ListProducts(ctx context.Context, category string, limit int, cursor string) (Page, error)
	GetProduct(ctx context.Context, sku string) (Product, error)
	CreateProduct(ctx context.Context, p Product) (Product, error)
	SetStock(ctx context.Context, sku string, stock int) (Product, error)

	// Reserve holds the lines for orderID, all or nothing. Repeating it with the same
	// order ID and lines returns the first reservation and changes nothing.
	Reserve(ctx context.Context, orderID string, lines []Line) (Reservation, error)
	GetReservation(ctx context.Context, orderID string) (Reservation, error)
	// Commit sells the reserved units. Idempotent.
	Commit(ctx context.Context, orderID string) (Reservation, error)
	// Release gives the units back: reserved ones to the available pool, committed ones
	// to stock. Idempotent; releasing an unknown order records the release, so a
	// reservation that arrives late for it is refused.
	Release(ctx context.Context, orderID string) (Reservation, error)
}

type service struct {
	store    Store
	currency string
	ttl      time.Duration
	now      func() time.Time
}

// NewService returns the inventory service selling in currency, holding reservations
// for ttl. now is the clock (time.Now in production).
func NewService(store Store, currency string, ttl time.Duration, now func() time.Time) Service {
	return &service{store: store, currency: currency, ttl: ttl, now: now}
}

var (
	skuPattern      = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)
	categoryPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,31}$`)
	orderIDPattern  = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
)

func (s *service) ListProducts(ctx context.Context, category string, limit int, cursor string) (Page, error) {
	if category != "" && !categoryPattern.MatchString(category) {
		return Page{}, ErrInvalidCategory
	}
	if limit == 0 {
		limit = DefaultPageSize
	}
	if limit < 1 || limit > MaxPageSize {
		return Page{}, ErrInvalidLimit
	}
	after := ""
	if cursor != "" {
		b, err := base64.RawURLEncoding.DecodeString(cursor)
		if err != nil || !skuPattern.Match(b) {
			return Page{}, ErrInvalidCursor
		}
		after = string(b)
	}
	// One more than asked tells whether a next page exists.
	products, err := s.store.ListProducts(ctx, category, after, limit+1)
	if err != nil {
		return Page{}, err
	}
	page := Page{Products: products}
	if len(products) > limit {
		page.Products = products[:limit]
		page.NextCursor = base64.RawURLEncoding.EncodeToString([]byte(products[limit-1].SKU))
	}
	return page, nil
}

func (s *service) GetProduct(ctx context.Context, sku string) (Product, error) {
	if !skuPattern.MatchString(sku) {
		return Product{}, ErrProductNotFound
	}
	return s.store.GetProduct(ctx, sku)
}

func (s *service) CreateProduct(ctx context.Context, p Product) (Product, error) {
	switch {
	case !skuPattern.MatchString(p.SKU):
		return Product{}, ErrInvalidSKU
	case p.Name == "" || utf8.RuneCountInString(p.Name) > 200:
		return Product{}, ErrInvalidName
	case utf8.RuneCountInString(p.Description) > 2000:
		return Product{}, ErrInvalidDescription
	case p.Category != "" && !categoryPattern.MatchString(p.Category):
		return Product{}, ErrInvalidCategory
	case p.Price.Amount < 1 || p.Price.Amount > MaxPrice:
		return Product{}, ErrInvalidPrice
	case p.Price.Currency != s.currency:
		return Product{}, ErrInvalidCurrency.WithMessage("prices must be in %s", s.currency)
	case p.Stock < 0 || p.Stock > MaxStock:
		return Product{}, ErrInvalidStock
	}
	now := s.now().UTC()
	p.Reserved, p.CreatedAt, p.UpdatedAt = 0, now, now
	return s.store.CreateProduct(ctx, p)
}

func (s *service) SetStock(ctx context.Context, sku string, stock int) (Product, error) {
	if !skuPattern.MatchString(sku) {
		return Product{}, ErrProductNotFound
	}
	if stock < 0 || stock > MaxStock {
		return Product{}, ErrInvalidStock
	}
	return s.store.SetStock(ctx, sku, stock, s.now().UTC())
}

func (s *service) Reserve(ctx context.Context, orderID string, lines []Line) (Reservation, error) {
	if !orderIDPattern.MatchString(orderID) {
		return Reservation{}, ErrInvalidOrderID
	}
	if len(lines) == 0 || len(lines) > MaxLines {
		return Reservation{}, ErrNoLines
	}
	seen := make(map[string]bool, len(lines))
	for _, l := range lines {
		switch {
		case !skuPattern.MatchString(l.SKU):
			return Reservation{}, ErrInvalidSKU
		case l.Quantity < 1 || l.Quantity > MaxQuantity:
			return Reservation{}, ErrInvalidQuantity
		case seen[l.SKU]:
			return Reservation{}, ErrDuplicateSKU.WithMessage("SKU %q appears twice", l.SKU)
		}
		seen[l.SKU] = true
	}
	// Products are locked in SKU order, so concurrent reservations cannot deadlock.
	sorted := append([]Line(nil), lines...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].SKU < sorted[j].SKU })

	now := s.now().UTC()
	r, created, err := s.store.Reserve(ctx, orderID, sorted, now, now.Add(s.ttl))
	if err != nil || created {
		return r, err
	}
	switch r.Status {
	case StatusReleased:
		return Reservation{}, ErrReservationReleased
	case StatusExpired:
		return Reservation{}, ErrReservationExpired
	}
	if !sameLines(r.Lines, sorted) {
		return Reservation{}, ErrIdempotencyMismatch
	}
	return r, nil
}

// sameLines compares reserved lines with requested ones, both in SKU order.
func sameLines(reserved []ReservedLine, asked []Line) bool {
	if len(reserved) != len(asked) {
		return false
	}
	for i := range asked {
		if reserved[i].SKU != asked[i].SKU || reserved[i].Quantity != asked[i].Quantity {
			return false
		}
	}
	return true
}

func (s *service) GetReservation(ctx context.Context, orderID string) (Reservation, error) {
	if !orderIDPattern.MatchString(orderID) {
		return Reservation{}, ErrReservationNotFound
	}
	return s.store.GetReservation(ctx, orderID)
}

func (s *service) Commit(ctx context.Context, orderID string) (Reservation, error) {
	if !orderIDPattern.MatchString(orderID) {
		return Reservation{}, ErrReservationNotFound
	}
	r, err := s.store.Commit(ctx, orderID, s.now().UTC())
	if err != nil {
		return Reservation{}, err
	}
	switch r.Status {
	case StatusReleased:
		return Reservation{}, ErrReservationReleased
	case StatusExpired:
		return Reservation{}, ErrReservationExpired
	}
	return r, nil
}

func (s *service) Release(ctx context.Context, orderID string) (Reservation, error) {
	if !orderIDPattern.MatchString(orderID) {
		return Reservation{}, ErrInvalidOrderID
	}
	return s.store.Release(ctx, orderID, s.now().UTC())
}

// ExpireReservations returns the stock of reservations past their TTL, every interval,
// until ctx is done. Several instances may run it at once.
func ExpireReservations(ctx context.Context, store Store, interval time.Duration, now func() time.Time, logger log.Logger) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		n, err := store.ExpireReservations(ctx, now().UTC(), 100)
		switch {
		case err != nil && !errors.Is(err, context.Canceled):
			_ = level.Error(logger).Log("msg", "expiring reservations failed", "err", err)
		case n > 0:
			_ = level.Info(logger).Log("msg", "expired reservations", "count", n)
		}
	}
}
