// Package order is the shop's cart and checkout. A checkout is a saga across inventory
// (reserve, commit, release) and payment (charge, refund) in which every step is
// persisted in the orders table before the next remote call is made, and every remote
// call is keyed by the order ID (or the charge ID), so a saga interrupted anywhere, by
// a crash or an outage, can be resumed by any instance and either completes or is
// compensated.
package order

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"regexp"
	"sort"
	"sync"
	"time"

	"github.com/go-kit/log"
	"github.com/openzipkin/zipkin-go"

	"github.com/kitshop/kitshop/inventory"
	"github.com/kitshop/kitshop/payment"
	"github.com/kitshop/kitshop/pkg/auth"
	"github.com/kitshop/kitshop/pkg/backoff"
	"github.com/kitshop/kitshop/pkg/errs"
	"github.com/kitshop/kitshop/pkg/observe"
)

// Domain errors.
var (
	ErrInvalidSKU            = errs.E(errs.Invalid, "invalid_sku", "a SKU is 1-64 letters, digits, '.', '_' or '-'")
	ErrInvalidQuantity       = errs.E(errs.Invalid, "invalid_quantity", "a quantity is 1 to 99")
	ErrDuplicateSKU          = errs.E(errs.Invalid, "duplicate_sku", "each SKU may appear once in an order")
	ErrTooManyLines          = errs.E(errs.Invalid, "too_many_lines", "an order has at most 50 lines")
	ErrCartFull              = errs.E(errs.Unprocessable, "cart_full", "a cart has at most 50 lines")
	ErrCartEmpty             = errs.E(errs.Unprocessable, "cart_empty", "the cart is empty: add items or send them with the order")
	ErrProductNotFound       = errs.E(errs.NotFound, "product_not_found", "no product with that SKU")
	ErrUnknownSKU            = errs.E(errs.Unprocessable, "unknown_sku", "the order names a product that does not exist")
	ErrOrderTooLarge         = errs.E(errs.Unprocessable, "order_too_large", "the order's total is more than one payment can be")
	ErrMissingIdempotencyKey = errs.E(errs.Invalid, "missing_idempotency_key", "POST /v1/orders needs an Idempotency-Key header")
	ErrInvalidIdempotencyKey = errs.E(errs.Invalid, "invalid_idempotency_key", "an Idempotency-Key is 1-200 printable ASCII characters")
	ErrIdempotencyMismatch   = errs.E(errs.Conflict, "idempotency_mismatch", "this Idempotency-Key was used with a different request")
	ErrMissingCard           = errs.E(errs.Invalid, "missing_payment", "an order needs payment: {card_number, exp_month, exp_year, cvc}")
	ErrOrderNotFound         = errs.E(errs.NotFound, "order_not_found", "no such order")
	ErrOrderNotCancellable   = errs.E(errs.Conflict, "order_not_cancellable", "only a confirmed order can be cancelled")
	ErrOutOfStock            = errs.E(errs.Unprocessable, "out_of_stock", "not enough stock")
	ErrPaymentDeclined       = errs.E(errs.Unprocessable, "payment_declined", "the card was declined")
	ErrCheckoutInterrupted   = errs.E(errs.Unprocessable, "checkout_interrupted", "the checkout was interrupted before the card was charged; nothing was charged")
	ErrCheckoutExpired       = errs.E(errs.Unprocessable, "checkout_expired", "the checkout could not complete before its reservation expired; any charge is refunded")
	ErrCurrencyMismatch      = errs.E(errs.Unprocessable, "currency_mismatch", "the shop sells in one currency")

	errStopped = errors.New("order: saga stopped by the test hook")
	errTooLate = errors.New("order: the reservation TTL passed before the step could be taken")
)

// Limits.
const (
	MaxQuantity  = 99
	MaxLines     = 50
	MaxListed    = 100
	maxKeyLength = 200
	// lookupConcurrency bounds the product lookups one cart or order makes at once.
	lookupConcurrency = 8
	// recoveryBatch is how many stale sagas one recovery pass takes.
	recoveryBatch        = 50
	idempotencyRetention = 24 * time.Hour

	orderEventConfirmed = "order.confirmed"
	orderEventCancelled = "order.cancelled"
)

var (
	skuPattern            = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)
	orderIDPattern        = regexp.MustCompile(`^ord_[0-9a-f]{24}$`)
	idempotencyKeyPattern = regexp.MustCompile(`^[\x21-\x7e]{1,200}$`)
	defaultBackoff        = Backoff{Min: 50 * time.Millisecond, Max: 2 * time.Second}
)

// Service is the order API. Every method acts for the caller in the context
// (auth.CallerFrom); another user's order is ErrOrderNotFound.
type Service interface {
	GetCart(ctx context.Context) (Cart, error)
	// SetCartItem sets a line's quantity; 0 removes it.
	SetCartItem(ctx context.Context, sku string, quantity int) (Cart, error)
	RemoveCartItem(ctx context.Context, sku string) (Cart, error)

	// PlaceOrder checks out. It returns the order confirmed, or pending when the saga
	// outlived the request deadline (it goes on in the background); a refused order is
	// kept as failed and returned as an error (ErrOutOfStock, ErrPaymentDeclined…).
	// The same key with the same checkout answers with that first order's current
	// state; with another checkout it is ErrIdempotencyMismatch.
	PlaceOrder(ctx context.Context, idempotencyKey string, c Checkout) (Order, error)
	ListOrders(ctx context.Context) ([]Order, error)
	GetOrder(ctx context.Context, id string) (Order, error)
	// CancelOrder refunds a confirmed order and returns its stock. The order comes
	// back cancelled, or still confirmed when the cancellation outlived the request
	// deadline and goes on in the background.
	CancelOrder(ctx context.Context, id string) (Order, error)
}

// Inventory is what the order service needs of the inventory service.
type Inventory interface {
	GetProduct(ctx context.Context, sku string) (inventory.Product, error)
	Reserve(ctx context.Context, orderID string, lines []inventory.Line) (inventory.Reservation, error)
	Commit(ctx context.Context, orderID string) (inventory.Reservation, error)
	Release(ctx context.Context, orderID string) (inventory.Reservation, error)
}

// Payment is what the order service needs of the payment service.
type Payment interface {
	Charge(ctx context.Context, r payment.ChargeRequest) (payment.Charge, bool, error)
	Refund(ctx context.Context, id string) (payment.Charge, bool, error)
	ListCharges(ctx context.Context, orderID string) ([]payment.Charge, error)
}

// Backoff bounds the pauses between tries of a saga step whose service is down.
type Backoff = backoff.Exponential

// Config configures the service and its sagas. Zero fields take the defaults noted.
type Config struct {
	Currency string // the shop's one currency (EUR)
	// RequestDeadline is how long POST /v1/orders waits for the saga before answering
	// 202 pending (5 s); SagaTimeout bounds the saga's background run after that (2 m).
	RequestDeadline time.Duration
	SagaTimeout     time.Duration
	// ReservationTTL matches inventory's: a pending order older than this is
	// compensated rather than completed (15 m).
	ReservationTTL time.Duration
	// RecoveryGrace is how long a saga driver holds an order's lease without showing
	// progress before another driver (the recovery loop of any instance) may take it
	// over (30 s).
	RecoveryGrace time.Duration
	Backoff       Backoff // pauses between tries of a step (50 ms doubling to 2 s)

	Now     func() time.Time // time.Now
	Logger  log.Logger
	Metrics *observe.Metrics // nil: metrics are discarded
	Tracer  *zipkin.Tracer   // nil: no saga spans

	// StopAt is a test hook: the saga stops, as if the process died, at the first
	// point for which it returns true. Points are the persisted steps ("created",
	// "reserved", "charged", "cancelling", "refunded") and the moments right after a
	// remote call, before its result is persisted ("reserve_called", "charge_called",
	// "commit_called", "refund_called").
	StopAt func(point string) bool
}

func (c Config) withDefaults() Config {
	if c.Currency == "" {
		c.Currency = "EUR"
	}
	if c.RequestDeadline <= 0 {
		c.RequestDeadline = 5 * time.Second
	}
	if c.SagaTimeout <= 0 {
		c.SagaTimeout = 2 * time.Minute
	}
	if c.ReservationTTL <= 0 {
		c.ReservationTTL = 15 * time.Minute
	}
	if c.RecoveryGrace <= 0 {
		c.RecoveryGrace = 30 * time.Second
	}
	if c.Backoff.Min <= 0 || c.Backoff.Max < c.Backoff.Min {
		c.Backoff = defaultBackoff
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = log.NewNopLogger()
	}
	return c
}

type service struct {
	store Store
	inv   Inventory
	saga  *Saga
	cfg   Config
}

// NewService returns the order service. Prices and names come from inv; checkouts
// and cancellations are run by saga. With cfg.Metrics, checkouts are counted in
// kitshop_order_checkouts_total{outcome}.
func NewService(store Store, inv Inventory, saga *Saga, cfg Config) Service {
	s := &service{store: store, inv: inv, saga: saga, cfg: cfg.withDefaults()}
	if cfg.Metrics == nil {
		return s
	}
	return countCheckouts(s, cfg.Metrics.Counter("order", "checkouts_total", "Checkouts by outcome: confirmed, pending, replayed, or the failure code.", "outcome"))
}

func (s *service) now() time.Time { return s.cfg.Now().UTC().Truncate(time.Microsecond) }

func caller(ctx context.Context) (auth.Caller, error) {
	c, ok := auth.CallerFrom(ctx)
	if !ok || c.UserID == "" {
		return auth.Caller{}, auth.ErrNoToken
	}
	return c, nil
}

func (s *service) GetCart(ctx context.Context) (Cart, error) {
	c, err := caller(ctx)
	if err != nil {
		return Cart{}, err
	}
	return s.cart(ctx, c.UserID)
}

// cart prices the user's cart from inventory, now.
func (s *service) cart(ctx context.Context, userID string) (Cart, error) {
	lines, err := s.store.CartLines(ctx, userID)
	if err != nil {
		return Cart{}, err
	}
	asked := make([]Line, len(lines))
	for i, l := range lines {
		asked[i] = Line{SKU: l.SKU, Quantity: l.Quantity}
	}
	items, total, err := s.price(ctx, asked, ErrProductNotFound)
	if err != nil {
		return Cart{}, err
	}
	cart := Cart{Items: make([]CartItem, len(items)), Total: total}
	for i, it := range items {
		cart.Items[i] = CartItem{
			SKU: it.SKU, Name: it.Name, Quantity: it.Quantity, UnitPrice: it.UnitPrice,
			LineTotal: Money{Amount: it.UnitPrice.Amount * int64(it.Quantity), Currency: it.UnitPrice.Currency},
		}
	}
	return cart, nil
}

// price looks the lines' products up in inventory, a few at a time, and returns them
// as items with the current names and prices, and their total. A product inventory
// does not know is notFound.
func (s *service) price(ctx context.Context, lines []Line, notFound *errs.Error) ([]Item, Money, error) {
	items := make([]Item, len(lines))
	failures := make([]error, len(lines))
	sem := make(chan struct{}, lookupConcurrency)
	var wg sync.WaitGroup
	for i, l := range lines {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			p, err := s.inv.GetProduct(ctx, l.SKU)
			if err != nil {
				failures[i] = err
				return
			}
			items[i] = Item{SKU: l.SKU, Name: p.Name, Quantity: l.Quantity, UnitPrice: Money{Amount: p.Price.Amount, Currency: p.Price.Currency}}
		}()
	}
	wg.Wait()
	total := Money{Currency: s.cfg.Currency}
	for i, err := range failures {
		switch {
		case errors.Is(err, inventory.ErrProductNotFound):
			return nil, Money{}, notFound.WithMessage("no product with SKU %q", lines[i].SKU)
		case err != nil:
			return nil, Money{}, err
		case items[i].UnitPrice.Currency != s.cfg.Currency:
			return nil, Money{}, ErrCurrencyMismatch.WithMessage("%q is priced in %s; the shop sells in %s", items[i].SKU, items[i].UnitPrice.Currency, s.cfg.Currency)
		}
		total.Amount += items[i].UnitPrice.Amount * int64(items[i].Quantity)
	}
	return items, total, nil
}

func (s *service) SetCartItem(ctx context.Context, sku string, quantity int) (Cart, error) {
	c, err := caller(ctx)
	if err != nil {
		return Cart{}, err
	}
	if !skuPattern.MatchString(sku) {
		return Cart{}, ErrProductNotFound
	}
	if quantity < 0 || quantity > MaxQuantity {
		return Cart{}, ErrInvalidQuantity
	}
	if quantity > 0 {
		if _, err := s.inv.GetProduct(ctx, sku); errors.Is(err, inventory.ErrProductNotFound) {
			return Cart{}, ErrProductNotFound.WithMessage("no product with SKU %q", sku)
		} else if err != nil {
			return Cart{}, err
		}
	}
	if err := s.store.SetCartLine(ctx, c.UserID, sku, quantity, MaxLines, s.now()); err != nil {
		return Cart{}, err
	}
	return s.cart(ctx, c.UserID)
}

func (s *service) RemoveCartItem(ctx context.Context, sku string) (Cart, error) {
	c, err := caller(ctx)
	if err != nil {
		return Cart{}, err
	}
	if !skuPattern.MatchString(sku) {
		return Cart{}, ErrProductNotFound
	}
	if err := s.store.SetCartLine(ctx, c.UserID, sku, 0, MaxLines, s.now()); err != nil {
		return Cart{}, err
	}
	return s.cart(ctx, c.UserID)
}

// fingerprint identifies a checkout request for its Idempotency-Key. It leaves out the
// card number (but its last four digits) and the CVC, so no card data is stored.
func fingerprint(c Checkout) string {
	h := sha256.New()
	_ = json.NewEncoder(h).Encode(struct {
		Items    []Line `json:"items"`
		Last4    string `json:"last4"`
		ExpMonth int    `json:"exp_month"`
		ExpYear  int    `json:"exp_year"`
	}{c.Items, c.Card.Info().Last4, c.Card.ExpMonth, c.Card.ExpYear})
	return hex.EncodeToString(h.Sum(nil))
}

func newOrderID() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	return "ord_" + hex.EncodeToString(b)
}

func newToken() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func (s *service) PlaceOrder(ctx context.Context, rawKey string, co Checkout) (Order, error) {
	o, _, err := s.checkout(ctx, rawKey, co)
	if err != nil {
		return Order{}, err
	}
	return checkoutResult(o)
}

// checkout is PlaceOrder up to its answer: the order as the checkout left it, and
// whether it was a repeat of an earlier checkout (replayed) rather than a new one.
func (s *service) checkout(ctx context.Context, rawKey string, co Checkout) (o Order, replayed bool, err error) {
	c, err := caller(ctx)
	if err != nil {
		return Order{}, false, err
	}
	switch {
	case rawKey == "":
		return Order{}, false, ErrMissingIdempotencyKey
	case len(rawKey) > maxKeyLength || !idempotencyKeyPattern.MatchString(rawKey):
		return Order{}, false, ErrInvalidIdempotencyKey
	}
	now := s.now()
	if err := validateLines(co.Items); err != nil {
		return Order{}, false, err
	}
	if err := validateCard(co.Card, now); err != nil {
		return Order{}, false, err
	}
	key := IdempotencyKey{UserID: c.UserID, Key: rawKey, Hash: fingerprint(co), NotBefore: now.Add(-idempotencyRetention)}
	// A repeat is answered before the cart is read: it may have been emptied by the
	// first checkout.
	switch stored, err := s.store.OrderByKey(ctx, key); {
	case err == nil:
		return stored, true, nil
	case !errors.Is(err, ErrOrderNotFound):
		return Order{}, false, err
	}
	lines, fromCart := co.Items, len(co.Items) == 0
	if fromCart {
		cart, err := s.store.CartLines(ctx, c.UserID)
		if err != nil {
			return Order{}, false, err
		}
		if len(cart) == 0 {
			return Order{}, false, ErrCartEmpty
		}
		for _, l := range cart {
			lines = append(lines, Line{SKU: l.SKU, Quantity: l.Quantity})
		}
	}
	sort.Slice(lines, func(i, j int) bool { return lines[i].SKU < lines[j].SKU })
	items, total, err := s.price(ctx, lines, ErrUnknownSKU)
	if err != nil {
		return Order{}, false, err
	}
	if total.Amount > payment.MaxAmount {
		return Order{}, false, ErrOrderTooLarge
	}
	o = Order{
		ID: newOrderID(), UserID: c.UserID, Email: c.Email, Status: StatusPending, Step: StepCreated,
		Items: items, Total: total, FromCart: fromCart, CreatedAt: now, UpdatedAt: now,
	}
	lease := Lease{Token: newToken(), Until: now.Add(s.cfg.RecoveryGrace)}
	stored, created, err := s.store.CreateOrder(ctx, o, key, lease)
	if err != nil {
		return Order{}, false, err
	}
	if !created {
		return stored, true, nil
	}
	card := co.Card
	o, err = s.saga.runWithin(ctx, s.cfg.RequestDeadline, stored, lease.Token, &card)
	if err != nil {
		return Order{}, false, err
	}
	return o, false, nil
}

// checkoutResult is what a checkout answers for o: the order, or the error it failed
// with.
func checkoutResult(o Order) (Order, error) {
	if o.Status == StatusFailed {
		return Order{}, failedOrderError(o)
	}
	return o, nil
}

// failedOrderError is the error a failed order answers with.
func failedOrderError(o Order) error {
	return errs.E(errs.Unprocessable, o.FailureCode, "order %s failed: %s", o.ID, o.FailureMessage)
}

func (s *service) ListOrders(ctx context.Context) ([]Order, error) {
	c, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	return s.store.ListOrders(ctx, c.UserID, MaxListed)
}

func (s *service) GetOrder(ctx context.Context, id string) (Order, error) {
	c, err := caller(ctx)
	if err != nil {
		return Order{}, err
	}
	return s.ownedOrder(ctx, c.UserID, id)
}

// ownedOrder returns the order id if it belongs to userID; anyone else's is not found.
func (s *service) ownedOrder(ctx context.Context, userID, id string) (Order, error) {
	if !orderIDPattern.MatchString(id) {
		return Order{}, ErrOrderNotFound
	}
	o, err := s.store.Order(ctx, id)
	if err != nil {
		return Order{}, err
	}
	if o.UserID != userID {
		return Order{}, ErrOrderNotFound
	}
	return o, nil
}

func (s *service) CancelOrder(ctx context.Context, id string) (Order, error) {
	c, err := caller(ctx)
	if err != nil {
		return Order{}, err
	}
	o, err := s.ownedOrder(ctx, c.UserID, id)
	if err != nil {
		return Order{}, err
	}
	switch {
	case o.Status == StatusCancelled:
		return Order{}, ErrOrderNotCancellable.WithMessage("order %s is already cancelled", o.ID)
	case o.Status != StatusConfirmed:
		return Order{}, ErrOrderNotCancellable.WithMessage("order %s is %s; only a confirmed order can be cancelled", o.ID, o.Status)
	}
	now := s.now()
	lease := Lease{Token: newToken(), Until: now.Add(s.cfg.RecoveryGrace)}
	if _, err := s.store.Claim(ctx, o.ID, lease, now); errors.Is(err, ErrLeaseHeld) {
		return Order{}, ErrOrderNotCancellable.WithMessage("order %s is being cancelled", o.ID)
	} else if err != nil {
		return Order{}, err
	}
	if o.Step == StepCommitted {
		o, err = s.store.Advance(ctx, o.ID, lease.Token, Change{From: StepCommitted, Status: StatusConfirmed, Step: StepCancelling}, now, lease.Until)
		if errors.Is(err, ErrStale) {
			return Order{}, ErrOrderNotCancellable.WithMessage("order %s changed meanwhile", id)
		}
		if err != nil {
			return Order{}, err
		}
	}
	// A cancellation an earlier request left half done is finished by this one.
	return s.saga.runWithin(ctx, s.cfg.RequestDeadline, o, lease.Token, nil)
}
