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

	"github.com/go-kit/kit/metrics"
	"github.com/go-kit/kit/metrics/discard"
	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/openzipkin/zipkin-go"

	"github.com/kitshop/kitshop/inventory"
	"github.com/kitshop/kitshop/payment"
	"github.com/kitshop/kitshop/pkg/auth"
	"github.com/kitshop/kitshop/pkg/errs"
	"github.com/kitshop/kitshop/pkg/logging"
	"github.com/kitshop/kitshop/pkg/observe"
	"github.com/kitshop/kitshop/pkg/outbox"
)

// Money is an amount in minor units (cents) of an ISO 4217 currency.
type Money struct {
	Amount   int64  `json:"amount"`
	Currency string `json:"currency"`
}

// CartItem is a line of a cart, priced from inventory when the cart is shown.
type CartItem struct {
	SKU       string
	Name      string
	Quantity  int
	UnitPrice Money
	LineTotal Money
}

// Cart is a user's cart.
type Cart struct {
	Items []CartItem
	Total Money
}

// Item is a line of an order, with the name and price it was sold at.
type Item struct {
	SKU       string `json:"sku"`
	Name      string `json:"name"`
	Quantity  int    `json:"quantity"`
	UnitPrice Money  `json:"unit_price"`
}

// Order statuses, as the API shows them.
const (
	StatusPending   = "pending"
	StatusConfirmed = "confirmed"
	StatusFailed    = "failed"
	StatusCancelled = "cancelled"
)

// Saga steps: the last step persisted. A pending order moves created → reserved →
// charged → committed (confirmed); a failing one moves to compensating (release, then
// refund of any charge) and then compensated (failed). A confirmed order being cancelled
// moves committed → cancelling → refunded → released (cancelled).
const (
	StepCreated      = "created"
	StepReserved     = "reserved"
	StepCharged      = "charged"
	StepCommitted    = "committed"
	StepCompensating = "compensating"
	StepCompensated  = "compensated"
	StepCancelling   = "cancelling"
	StepRefunded     = "refunded"
	StepReleased     = "released"
)

// Order is an order and the state of its saga.
type Order struct {
	ID       string
	UserID   string
	Email    string
	Status   string
	Step     string
	Items    []Item
	Total    Money
	ChargeID string
	// FromCart orders remove their lines from the cart when confirmed.
	FromCart bool
	// FailureCode and FailureMessage say why a failed order failed.
	FailureCode    string
	FailureMessage string
	CreatedAt      time.Time
	UpdatedAt      time.Time
}

// Line asks for a quantity of a product.
type Line struct {
	SKU      string `json:"sku"`
	Quantity int    `json:"quantity"`
}

// Card is the card a checkout pays with: payment's, checked by payment's rules. It
// lives only in memory, for the length of the saga that charges it: it is never
// stored or logged.
type Card = payment.Card

// Checkout asks to buy Items, or the cart when Items is empty, paying with Card.
type Checkout struct {
	Items []Line
	Card  Card
}

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

	orderEventConfirmed     = "order.confirmed"
	orderEventCancelled     = "order.cancelled"
	checkoutOutcomeReplayed = "replayed"
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
type Backoff struct {
	Min, Max time.Duration
}

// Delay is the pause before try n+1 (n from 0): doubling from Min, capped at Max.
func (b Backoff) Delay(n int) time.Duration {
	d := b.Min
	for i := 0; i < n && d < b.Max; i++ {
		d *= 2
	}
	return min(d, b.Max)
}

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
	// Lease is how long a saga driver holds an order without showing progress before
	// another driver (the recovery loop of any instance) may take it over (30 s).
	Lease   time.Duration
	Backoff Backoff // pauses between tries of a step (50 ms doubling to 2 s)

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
	if c.Lease <= 0 {
		c.Lease = 30 * time.Second
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
// and cancellations are run by saga.
func NewService(store Store, inv Inventory, saga *Saga, cfg Config) Service {
	return &service{store: store, inv: inv, saga: saga, cfg: cfg.withDefaults()}
}

func (s *service) now() time.Time { return s.cfg.Now().UTC().Truncate(time.Microsecond) }

func caller(ctx context.Context) (auth.Caller, error) {
	c, ok := auth.CallerFrom(ctx)
	if !ok || c.UserID == "" {
		return auth.Caller{}, auth.ErrNoToken
	}
	return c, nil
}

// Cart.

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

// Orders.

func validateLines(lines []Line) error {
	if len(lines) > MaxLines {
		return ErrTooManyLines
	}
	seen := make(map[string]bool, len(lines))
	for _, l := range lines {
		switch {
		case !skuPattern.MatchString(l.SKU):
			return ErrInvalidSKU.WithMessage("%q is not a SKU", l.SKU)
		case l.Quantity < 1 || l.Quantity > MaxQuantity:
			return ErrInvalidQuantity.WithMessage("the quantity of %q must be 1 to %d", l.SKU, MaxQuantity)
		case seen[l.SKU]:
			return ErrDuplicateSKU.WithMessage("SKU %q appears twice", l.SKU)
		}
		seen[l.SKU] = true
	}
	return nil
}

// validateCard checks the card by payment's own rules, so that a card payment would
// refuse is refused before any stock is reserved.
func validateCard(c Card, now time.Time) error {
	if c == (Card{}) {
		return ErrMissingCard
	}
	return c.Validate(now)
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
	c, err := caller(ctx)
	if err != nil {
		return Order{}, err
	}
	switch {
	case rawKey == "":
		return Order{}, ErrMissingIdempotencyKey
	case len(rawKey) > maxKeyLength || !idempotencyKeyPattern.MatchString(rawKey):
		return Order{}, ErrInvalidIdempotencyKey
	}
	now := s.now()
	if err := validateLines(co.Items); err != nil {
		return Order{}, err
	}
	if err := validateCard(co.Card, now); err != nil {
		return Order{}, err
	}
	key := IdempotencyKey{UserID: c.UserID, Key: rawKey, Hash: fingerprint(co), NotBefore: now.Add(-idempotencyRetention)}
	// A repeat is answered before the cart is read: it may have been emptied by the
	// first checkout.
	switch stored, err := s.store.OrderByKey(ctx, key); {
	case err == nil:
		s.saga.checkouts.With("outcome", checkoutOutcomeReplayed).Add(1)
		return answer(stored)
	case !errors.Is(err, ErrOrderNotFound):
		return Order{}, err
	}
	lines, fromCart := co.Items, len(co.Items) == 0
	if fromCart {
		cart, err := s.store.CartLines(ctx, c.UserID)
		if err != nil {
			return Order{}, err
		}
		if len(cart) == 0 {
			return Order{}, ErrCartEmpty
		}
		for _, l := range cart {
			lines = append(lines, Line{SKU: l.SKU, Quantity: l.Quantity})
		}
	}
	sort.Slice(lines, func(i, j int) bool { return lines[i].SKU < lines[j].SKU })
	items, total, err := s.price(ctx, lines, ErrUnknownSKU)
	if err != nil {
		return Order{}, err
	}
	if total.Amount > payment.MaxAmount {
		return Order{}, ErrOrderTooLarge
	}
	o := Order{
		ID: newOrderID(), UserID: c.UserID, Email: c.Email, Status: StatusPending, Step: StepCreated,
		Items: items, Total: total, FromCart: fromCart, CreatedAt: now, UpdatedAt: now,
	}
	lease := Lease{Token: newToken(), Until: now.Add(s.cfg.Lease)}
	stored, created, err := s.store.CreateOrder(ctx, o, key, lease)
	if err != nil {
		return Order{}, err
	}
	if !created {
		s.saga.checkouts.With("outcome", checkoutOutcomeReplayed).Add(1)
		return answer(stored)
	}
	card := co.Card
	o, err = s.saga.runWithin(ctx, s.cfg.RequestDeadline, stored, lease.Token, &card)
	if err != nil {
		return Order{}, err
	}
	outcome := o.Status
	if o.Status == StatusFailed {
		outcome = o.FailureCode
	}
	s.saga.checkouts.With("outcome", outcome).Add(1)
	return answer(o)
}

// answer is what a checkout answers for o: the order, or the error it failed with.
func answer(o Order) (Order, error) {
	if o.Status == StatusFailed {
		return Order{}, failure(o)
	}
	return o, nil
}

// failure is the error a failed order answers with.
func failure(o Order) error {
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
	return s.own(ctx, c.UserID, id)
}

// own returns the order id if it belongs to userID; anyone else's is not found.
func (s *service) own(ctx context.Context, userID, id string) (Order, error) {
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
	o, err := s.own(ctx, c.UserID, id)
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
	lease := Lease{Token: newToken(), Until: now.Add(s.cfg.Lease)}
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

// Saga drives checkouts and cancellations, step by step, persisting each step before
// the next remote call. One Saga serves a process: the requests it runs continue in the
// background when they outlive their request, and Recover resumes the sagas any
// instance left behind.
type Saga struct {
	store Store
	inv   Inventory
	pay   Payment
	cfg   Config

	steps     metrics.Counter
	checkouts metrics.Counter
	pending   metrics.Gauge

	base   context.Context // background runs end when it does
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// NewSaga returns the saga runner. Its metrics are kitshop_saga_steps_total{step,
// outcome} (every remote call of a saga), kitshop_order_checkouts_total{outcome} and
// kitshop_order_pending_orders.
func NewSaga(store Store, inv Inventory, pay Payment, cfg Config) *Saga {
	cfg = cfg.withDefaults()
	s := &Saga{store: store, inv: inv, pay: pay, cfg: cfg,
		steps: discard.NewCounter(), checkouts: discard.NewCounter(), pending: discard.NewGauge()}
	if cfg.Metrics != nil {
		s.steps = cfg.Metrics.Counter("saga", "steps_total", "Remote calls of checkout and cancellation sagas, by step and outcome.", "step", "outcome")
		s.checkouts = cfg.Metrics.Counter("order", "checkouts_total", "Checkouts by outcome: confirmed, pending, replayed, or the failure code.", "outcome")
		s.pending = cfg.Metrics.Gauge("order", "pending_orders", "Orders whose checkout has not finished, as last counted by the recovery loop.")
	}
	s.base, s.cancel = context.WithCancel(context.Background())
	return s
}

// Close stops the background runs and waits for them; the recovery loop of any
// instance finishes what they leave.
func (s *Saga) Close() {
	s.cancel()
	s.wg.Wait()
}

// Wait waits for the background runs to end.
func (s *Saga) Wait() { s.wg.Wait() }

func (s *Saga) now() time.Time { return s.cfg.Now().UTC().Truncate(time.Microsecond) }

// runWithin drives o (whose lease is token) in the background and waits for it up to
// deadline or until ctx ends, then answers with the order as it stands.
func (s *Saga) runWithin(ctx context.Context, deadline time.Duration, o Order, token string, card *Card) (Order, error) {
	type result struct {
		o   Order
		err error
	}
	done := make(chan result, 1)
	// The run outlives the request: it keeps the request's values (trace) but not its
	// cancellation, and ends after SagaTimeout or when the Saga closes.
	bg, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.SagaTimeout)
	stop := context.AfterFunc(s.base, cancel)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer stop()
		defer cancel()
		o, err := s.drive(bg, o, token, card)
		done <- result{o, err}
	}()
	timer := time.NewTimer(deadline)
	defer timer.Stop()
	select {
	case r := <-done:
		if r.err == nil {
			return r.o, nil
		}
	case <-timer.C:
	case <-ctx.Done():
		return Order{}, ctx.Err()
	}
	// Not finished (yet, or by this run): answer with what is persisted.
	return s.store.Order(ctx, o.ID)
}

// Recover takes over the sagas no driver has shown progress on for the lease period
// (left by a crash, or by a background run that ran out of time) and drives each as
// far as it goes now. It returns how many it took.
func (s *Saga) Recover(ctx context.Context) (int, error) {
	now := s.now()
	lease := Lease{Token: newToken(), Until: now.Add(s.cfg.Lease)}
	orders, err := s.store.ClaimStale(ctx, lease, now, recoveryBatch)
	if err != nil {
		return 0, err
	}
	// A recovery pass must end before its lease does, so no other driver joins in.
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Lease/2)
	defer cancel()
	var wg sync.WaitGroup
	for _, o := range orders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			o, err := s.drive(ctx, o, lease.Token, nil)
			logger := log.With(s.cfg.Logger, "order_id", o.ID, "status", o.Status, "step", o.Step)
			if err != nil {
				_ = level.Warn(logger).Log("msg", "recovered saga not finished; will retry", "err", err)
				return
			}
			_ = level.Info(logger).Log("msg", "recovered saga")
		}()
	}
	wg.Wait()
	if n, err := s.store.CountPending(ctx); err == nil {
		s.pending.Set(float64(n))
	}
	return len(orders), nil
}

// RecoverSagas runs saga.Recover every interval, and forgets idempotency keys older
// than 24 h, until ctx is done. It starts with a pass, for what a crash left.
func RecoverSagas(ctx context.Context, saga *Saga, store Store, interval time.Duration, logger log.Logger) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		n, err := saga.Recover(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			_ = level.Error(logger).Log("msg", "saga recovery failed", "err", err)
		case n > 0:
			_ = level.Info(logger).Log("msg", "resumed sagas", "count", n)
		}
		if _, err := store.PurgeIdempotencyKeys(ctx, saga.now().Add(-idempotencyRetention)); err != nil && ctx.Err() == nil {
			_ = level.Error(logger).Log("msg", "purging idempotency keys failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// drive takes o from its persisted step to a final state: confirmed, failed or
// cancelled. card is nil when the saga is resumed: a checkout not yet charged is then
// compensated, because the card was never stored. It returns an error when it had to
// stop early (ctx ended, the lease was lost, the test hook fired), with the order as
// last persisted.
func (s *Saga) drive(ctx context.Context, o Order, token string, card *Card) (Order, error) {
	logger := log.With(logging.WithTrace(ctx, s.cfg.Logger), "order_id", o.ID)
	for {
		if s.stopAt(o.Step) {
			return o, errStopped
		}
		var (
			next Order
			err  error
		)
		switch o.Step {
		case StepCreated:
			next, err = s.reserve(ctx, o, token, card)
		case StepReserved:
			next, err = s.charge(ctx, o, token, card)
		case StepCharged:
			next, err = s.commit(ctx, o, token)
		case StepCompensating:
			next, err = s.compensate(ctx, o, token)
		case StepCancelling:
			next, err = s.refund(ctx, o, token)
		case StepRefunded:
			next, err = s.returnStock(ctx, o, token)
		default: // committed, compensated, released: nothing left to do
			return o, nil
		}
		if err != nil {
			if !errors.Is(err, errStopped) && ctx.Err() == nil {
				_ = level.Warn(logger).Log("msg", "saga stopped", "step", o.Step, "err", err)
			}
			return o, err
		}
		o = next
	}
}

func (s *Saga) stopAt(point string) bool { return s.cfg.StopAt != nil && s.cfg.StopAt(point) }

// advance persists the next step of o, holding the lease a while longer, or
// releasing it when the saga is over.
func (s *Saga) advance(ctx context.Context, o Order, token string, c Change) (Order, error) {
	c.From = o.Step
	now := s.now()
	until := now.Add(s.cfg.Lease)
	if c.Step == StepCommitted || c.Step == StepCompensated || c.Step == StepReleased {
		until = now
	}
	var next Order
	err := s.persist(ctx, func() error {
		var err error
		next, err = s.store.Advance(ctx, o.ID, token, c, now, until)
		return err
	})
	return next, err
}

// persist runs a store write of the saga, trying again with backoff while the store
// fails for a reason other than the saga's own state (the database restarting, its
// connections cut). A checkout in flight so survives a database blip, instead of being
// left to recovery, which no longer has the card. The saga's context bounds it.
func (s *Saga) persist(ctx context.Context, write func() error) error {
	for attempt := 0; ; attempt++ {
		err := write()
		if err == nil || errs.IsBusiness(err) || ctx.Err() != nil {
			return err
		}
		t := time.NewTimer(s.cfg.Backoff.Delay(attempt))
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
	}
}

// fail starts compensating o for cause.
func (s *Saga) fail(ctx context.Context, o Order, token string, cause *errs.Error) (Order, error) {
	return s.advance(ctx, o, token, Change{Status: StatusPending, Step: StepCompensating, FailureCode: cause.Code, FailureMessage: cause.Message})
}

// call makes one remote call of a saga step, trying again with backoff while the
// service is down (any failure that is not a business answer), keeping the lease. Past
// giveUp (when not zero) it stops with errTooLate.
func (s *Saga) call(ctx context.Context, o Order, token, step string, giveUp time.Time, f func(context.Context) error) error {
	if s.cfg.Tracer != nil {
		var span zipkin.Span
		span, ctx = s.cfg.Tracer.StartSpanFromContext(ctx, "saga."+step)
		span.Tag("order_id", o.ID)
		defer span.Finish()
	}
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			t := time.NewTimer(s.cfg.Backoff.Delay(attempt - 1))
			select {
			case <-ctx.Done():
				t.Stop()
				return ctx.Err()
			case <-t.C:
			}
			now := s.now()
			if !giveUp.IsZero() && now.After(giveUp) {
				return errTooLate
			}
			if err := s.persist(ctx, func() error {
				return s.store.Touch(ctx, o.ID, Lease{Token: token, Until: now.Add(s.cfg.Lease)})
			}); err != nil {
				return err
			}
		}
		err := f(ctx)
		s.steps.With("step", step, "outcome", observe.Outcome(err)).Add(1)
		if err == nil || errs.IsBusiness(err) || ctx.Err() != nil {
			return err
		}
	}
}

// giveUp is when a checkout stops moving forward and is compensated instead: when
// its reservation would expire.
func (s *Saga) giveUp(o Order) time.Time { return o.CreatedAt.Add(s.cfg.ReservationTTL) }

func (s *Saga) reserve(ctx context.Context, o Order, token string, card *Card) (Order, error) {
	if card == nil {
		// Resumed before the charge: without the card it cannot be charged. Releasing
		// the order (in compensate) also refuses a reserve still in flight for it.
		return s.fail(ctx, o, token, ErrCheckoutInterrupted)
	}
	lines := make([]inventory.Line, len(o.Items))
	for i, it := range o.Items {
		lines[i] = inventory.Line{SKU: it.SKU, Quantity: it.Quantity}
	}
	err := s.call(ctx, o, token, "reserve", s.giveUp(o), func(ctx context.Context) error {
		_, err := s.inv.Reserve(ctx, o.ID, lines)
		return err
	})
	if s.stopAt("reserve_called") {
		return o, errStopped
	}
	switch {
	case err == nil:
		return s.advance(ctx, o, token, Change{Status: StatusPending, Step: StepReserved})
	case errors.Is(err, errTooLate):
		return s.fail(ctx, o, token, ErrCheckoutExpired)
	case errors.Is(err, inventory.ErrOutOfStock), errors.Is(err, inventory.ErrProductNotFound):
		// Refused whole: nothing is held, nothing to compensate.
		cause := ErrOutOfStock.WithMessage("%s", errs.From(err).Message)
		if errors.Is(err, inventory.ErrProductNotFound) {
			cause = ErrUnknownSKU.WithMessage("%s", errs.From(err).Message)
		}
		return s.advance(ctx, o, token, Change{Status: StatusFailed, Step: StepCompensated, FailureCode: cause.Code, FailureMessage: cause.Message})
	case errs.IsBusiness(err):
		return s.fail(ctx, o, token, errs.From(err))
	}
	return o, err
}

func (s *Saga) charge(ctx context.Context, o Order, token string, card *Card) (Order, error) {
	var c payment.Charge
	var err error
	if card == nil {
		// Resumed: the charge may have been made before the crash.
		c, err = s.findCharge(ctx, o, token)
	} else {
		err = s.call(ctx, o, token, "charge", s.giveUp(o), func(ctx context.Context) error {
			var err error
			c, _, err = s.pay.Charge(ctx, payment.ChargeRequest{
				OrderID: o.ID, UserID: o.UserID,
				Amount: payment.Money{Amount: o.Total.Amount, Currency: o.Total.Currency},
				Card:   payment.Card{Number: card.Number, ExpMonth: card.ExpMonth, ExpYear: card.ExpYear, CVC: card.CVC},
			})
			return err
		})
	}
	if s.stopAt("charge_called") {
		return o, errStopped
	}
	switch {
	case errors.Is(err, errTooLate):
		return s.fail(ctx, o, token, ErrCheckoutExpired)
	case errs.IsBusiness(err):
		return s.fail(ctx, o, token, errs.From(err))
	case err != nil:
		return o, err
	case c.ID == "":
		return s.fail(ctx, o, token, ErrCheckoutInterrupted)
	case c.Status == payment.StatusDeclined:
		return s.fail(ctx, o, token, ErrPaymentDeclined.WithMessage("the card was declined (%s)", c.DeclineCode))
	}
	return s.advance(ctx, o, token, Change{Status: StatusPending, Step: StepCharged, ChargeID: c.ID})
}

// findCharge returns the charge made for o, or a zero Charge when there is none.
func (s *Saga) findCharge(ctx context.Context, o Order, token string) (payment.Charge, error) {
	var charges []payment.Charge
	err := s.call(ctx, o, token, "list_charges", time.Time{}, func(ctx context.Context) error {
		var err error
		charges, err = s.pay.ListCharges(ctx, o.ID)
		return err
	})
	if err != nil || len(charges) == 0 {
		return payment.Charge{}, err
	}
	return charges[0], nil
}

func (s *Saga) commit(ctx context.Context, o Order, token string) (Order, error) {
	err := s.call(ctx, o, token, "commit", s.giveUp(o), func(ctx context.Context) error {
		_, err := s.inv.Commit(ctx, o.ID)
		return err
	})
	if s.stopAt("commit_called") {
		return o, errStopped
	}
	switch {
	case errors.Is(err, errTooLate):
		return s.fail(ctx, o, token, ErrCheckoutExpired)
	case errs.IsBusiness(err): // the reservation expired or was released
		return s.fail(ctx, o, token, ErrCheckoutExpired.WithMessage("%s", errs.From(err).Message))
	case err != nil:
		return o, err
	}
	o.Status = StatusConfirmed
	event, err := s.event(orderEventConfirmed, o)
	if err != nil {
		return o, err
	}
	return s.advance(ctx, o, token, Change{Status: StatusConfirmed, Step: StepCommitted, Event: &event, ClearCart: o.FromCart})
}

// compensate undoes a failed checkout: releases its stock and refunds any charge made
// for it, however far it got; then the order is failed. Both calls are idempotent, so
// a compensation interrupted anywhere is simply run again.
func (s *Saga) compensate(ctx context.Context, o Order, token string) (Order, error) {
	err := s.call(ctx, o, token, "release", time.Time{}, func(ctx context.Context) error {
		_, err := s.inv.Release(ctx, o.ID)
		return err
	})
	if err != nil && !errs.IsBusiness(err) {
		return o, err
	}
	c, err := s.findCharge(ctx, o, token)
	if err != nil && !errs.IsBusiness(err) {
		return o, err
	}
	if c.Status == payment.StatusSucceeded {
		if err := s.refundCharge(ctx, o, token, c.ID); err != nil {
			return o, err
		}
	}
	return s.advance(ctx, o, token, Change{Status: StatusFailed, Step: StepCompensated, ChargeID: c.ID, FailureCode: o.FailureCode, FailureMessage: o.FailureMessage})
}

func (s *Saga) refundCharge(ctx context.Context, o Order, token, chargeID string) error {
	err := s.call(ctx, o, token, "refund", time.Time{}, func(ctx context.Context) error {
		_, _, err := s.pay.Refund(ctx, chargeID)
		return err
	})
	if errors.Is(err, payment.ErrChargeNotRefundable) { // declined: no money moved
		return nil
	}
	return err
}

// refund is the first step of a cancellation.
func (s *Saga) refund(ctx context.Context, o Order, token string) (Order, error) {
	if err := s.refundCharge(ctx, o, token, o.ChargeID); err != nil {
		return o, err
	}
	if s.stopAt("refund_called") {
		return o, errStopped
	}
	return s.advance(ctx, o, token, Change{Status: StatusConfirmed, Step: StepRefunded})
}

// returnStock ends a cancellation: the committed units go back to stock, and the order
// is cancelled with its event.
func (s *Saga) returnStock(ctx context.Context, o Order, token string) (Order, error) {
	err := s.call(ctx, o, token, "release", time.Time{}, func(ctx context.Context) error {
		_, err := s.inv.Release(ctx, o.ID)
		return err
	})
	if err != nil {
		return o, err
	}
	o.Status = StatusCancelled
	event, err := s.event(orderEventCancelled, o)
	if err != nil {
		return o, err
	}
	return s.advance(ctx, o, token, Change{Status: StatusCancelled, Step: StepReleased, Event: &event})
}

// eventData is the data of order.confirmed and order.cancelled, as notification reads it.
type eventData struct {
	OrderID string `json:"order_id"`
	UserID  string `json:"user_id"`
	Email   string `json:"email"`
	Items   []Item `json:"items"`
	Total   Money  `json:"total"`
	Status  string `json:"status"`
}

func (s *Saga) event(typ string, o Order) (outbox.Event, error) {
	return outbox.NewEvent(typ, o.ID, eventData{
		OrderID: o.ID, UserID: o.UserID, Email: o.Email, Items: o.Items, Total: o.Total, Status: o.Status,
	}, s.now())
}
