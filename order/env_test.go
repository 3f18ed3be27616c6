package order

import (
	"context"
	"errors"
	"math/rand/v2"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-kit/kit/sd"
	"github.com/go-kit/log"

	"github.com/kitshop/kitshop/inventory"
	"github.com/kitshop/kitshop/payment"
	"github.com/kitshop/kitshop/pkg/auth"
	"github.com/kitshop/kitshop/pkg/client"
	"github.com/kitshop/kitshop/pkg/errs"
	"github.com/kitshop/kitshop/pkg/observe"
	"github.com/kitshop/kitshop/pkg/testenv"
)

// testCard is a card the simulated processor approves; declinedCard one it declines.
var (
	testCard     = Card{Number: payment.TestCardSucceeds, ExpMonth: 12, ExpYear: 2030, CVC: "123"}
	declinedCard = Card{Number: payment.TestCardDeclined, ExpMonth: 12, ExpYear: 2030, CVC: "123"}
)

// clock is real time shifted by an offset a test can move forward, so leases and TTLs
// can pass without waiting while backoffs still take real time.
type clock struct{ offset atomic.Int64 }

func (c *clock) Now() time.Time { return time.Now().Add(time.Duration(c.offset.Load())) }

func (c *clock) Advance(d time.Duration) { c.offset.Add(int64(d)) }

// envOptions choose the stores and the faults of a test environment.
type envOptions struct {
	postgres  bool
	processor payment.SimulatedConfig
	wrapInv   func(Inventory) Inventory
	wrapPay   func(Payment) Payment
	cfg       Config
}

// env is the order service with the real inventory and payment services running
// in-process behind their HTTP transports, reached through their HTTP clients.
type env struct {
	t      testing.TB
	opts   envOptions
	inv    inventory.Service // direct, to seed and inspect
	pay    payment.Service   // direct, to inspect
	invC   Inventory         // what the order service calls
	payC   Payment
	store  Store
	clock  *clock
	cfg    Config
	saga   *Saga
	svc    Service
	logger log.Logger
}

func newEnv(t testing.TB, opts envOptions) *env {
	t.Helper()
	var (
		invStore inventory.Store
		payStore payment.Store
		store    Store
	)
	if opts.postgres {
		invStore = inventory.NewPostgresStore(testenv.Postgres(t, inventory.Migrations()))
		payStore = payment.NewPostgresStore(testenv.Postgres(t, payment.Migrations()))
		store = NewPostgresStore(testenv.Postgres(t, Migrations()))
	} else {
		invStore, payStore, store = inventory.NewMemoryStore(), payment.NewMemoryStore(), NewMemoryStore()
	}
	e := &env{t: t, opts: opts, store: store, clock: &clock{}, logger: log.NewNopLogger()}
	e.inv = inventory.NewService(invStore, "EUR", 15*time.Minute, time.Now)
	proc, err := payment.NewSimulatedProcessor(opts.processor)
	if err != nil {
		t.Fatal(err)
	}
	e.pay = payment.NewService(payStore, proc, time.Now)

	kid, key, err := auth.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	signer := auth.NewSigner(kid, key, auth.DefaultIssuer, auth.DefaultAudience, time.Hour)
	verifier := auth.NewVerifier(auth.StaticKeys{kid: signer.PublicKey()}, auth.DefaultIssuer, auth.DefaultAudience, signer.TTL())
	invSrv := httptest.NewServer(inventory.MakeHTTPHandler(inventory.MakeServerEndpoints(e.inv, observer("inventory"), verifier), nil))
	t.Cleanup(invSrv.Close)
	paySrv := httptest.NewServer(payment.MakeHTTPHandler(payment.MakeServerEndpoints(e.pay, observer("payment")), nil))
	t.Cleanup(paySrv.Close)

	// A caller name of its own gives this environment breakers untouched by other tests.
	copts := client.Options{
		Caller: testenv.Name("order"), Timeout: 5 * time.Second, AttemptTimeout: 2 * time.Second, Retries: 2,
		Breaker: client.Breaker{MaxConcurrent: 500, ErrorPercent: 50, VolumeThreshold: 20, SleepWindow: time.Second},
	}.Defaults()
	// A test that gives its requests a long deadline (the invariant suites: hundreds of
	// checkouts at once, on a machine busy with other packages' tests) is about what the
	// saga leaves behind, not latency: its calls wait as long as its requests may.
	if d := opts.cfg.RequestDeadline; d > copts.Timeout {
		copts.Timeout, copts.AttemptTimeout = d, d/3
	}
	e.invC = inventory.NewHTTPClient(sd.FixedInstancer{invSrv.Listener.Addr().String()}, copts)
	e.payC = payment.NewHTTPClient(sd.FixedInstancer{paySrv.Listener.Addr().String()}, copts)
	if opts.wrapInv != nil {
		e.invC = opts.wrapInv(e.invC)
	}
	if opts.wrapPay != nil {
		e.payC = opts.wrapPay(e.payC)
	}

	e.cfg = opts.cfg
	e.cfg.Now = e.clock.Now
	e.cfg.Logger = e.logger
	if e.cfg.Backoff == (Backoff{}) {
		e.cfg.Backoff = Backoff{Min: 5 * time.Millisecond, Max: 50 * time.Millisecond}
	}
	if e.cfg.RecoveryGrace == 0 {
		e.cfg.RecoveryGrace = 4 * time.Second
	}
	e.cfg = e.cfg.withDefaults()
	e.saga, e.svc = e.newService(e.cfg)
	return e
}

// newService starts another order service instance on the same store and clients, as
// a restarted process would.
func (e *env) newService(cfg Config) (*Saga, Service) {
	saga := NewSaga(e.store, e.invC, e.payC, cfg)
	e.t.Cleanup(saga.Close)
	return saga, NewService(e.store, e.invC, saga, cfg)
}

func observer(service string) observe.Observer {
	return observe.Observer{Logger: log.NewNopLogger(), Metrics: observe.NewMetrics(service)}
}

// seed creates products with the given stock, priced 1999 EUR.
func (e *env) seed(stock map[string]int) {
	e.t.Helper()
	for sku, n := range stock {
		p := inventory.Product{SKU: sku, Name: "Product " + sku, Price: inventory.Money{Amount: 1999, Currency: "EUR"}, Stock: n}
		if _, err := e.inv.CreateProduct(context.Background(), p); err != nil {
			e.t.Fatal(err)
		}
	}
}

// stock returns a product's units on hand and reserved.
func (e *env) stock(sku string) (onHand, reserved int) {
	e.t.Helper()
	p, err := e.inv.GetProduct(context.Background(), sku)
	if err != nil {
		e.t.Fatal(err)
	}
	return p.Stock, p.Reserved
}

// charges returns the charges made for an order.
func (e *env) charges(orderID string) []payment.Charge {
	e.t.Helper()
	c, err := e.pay.ListCharges(context.Background(), orderID)
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

// checkSettled verifies that o's saga left the other services consistent: a confirmed
// order has its reservation committed and one succeeded charge of its total; any other
// has no reservation holding stock and no charge that is not refunded or declined.
func (e *env) checkSettled(o Order) {
	e.t.Helper()
	ctx := context.Background()
	r, err := e.inv.GetReservation(ctx, o.ID)
	if err != nil && !errors.Is(err, inventory.ErrReservationNotFound) {
		e.t.Fatal(err)
	}
	charges := e.charges(o.ID)
	if len(charges) > 1 {
		e.t.Errorf("order %s: %d charges", o.ID, len(charges))
	}
	switch o.Status {
	case StatusConfirmed:
		if r.Status != inventory.StatusCommitted {
			e.t.Errorf("confirmed order %s: reservation %q, want committed", o.ID, r.Status)
		}
		if len(charges) != 1 || charges[0].Status != payment.StatusSucceeded || charges[0].Amount.Amount != o.Total.Amount || charges[0].ID != o.ChargeID {
			e.t.Errorf("confirmed order %s (charge %s, total %d): charges %+v", o.ID, o.ChargeID, o.Total.Amount, charges)
		}
	case StatusFailed, StatusCancelled:
		if r.Status == inventory.StatusReserved || (r.Status == inventory.StatusCommitted) {
			e.t.Errorf("%s order %s: reservation still %s", o.Status, o.ID, r.Status)
		}
		for _, c := range charges {
			if c.Status == payment.StatusSucceeded {
				e.t.Errorf("%s order %s: charge %s not refunded", o.Status, o.ID, c.ID)
			}
		}
	default:
		e.t.Errorf("order %s still %s (step %s)", o.ID, o.Status, o.Step)
	}
}

// as returns a context acting for a customer.
func as(userID string) context.Context {
	return auth.NewContext(context.Background(), auth.Caller{UserID: userID, Email: userID + "@example.com", Role: auth.RoleCustomer})
}

// unavailable is what a client returns when a service is down.
var unavailable = errs.E(errs.Unavailable, "service_unavailable", "injected outage")

// faults injects failures: before a call (the call never happens) and after it (the
// call happened but its answer was lost), each with its probability.
type faults struct {
	mu            sync.Mutex
	rnd           *rand.Rand
	before, after float64
}

func newFaults(before, after float64, seed uint64) *faults {
	return &faults{rnd: rand.New(rand.NewPCG(seed, seed+1)), before: before, after: after}
}

func (f *faults) roll(p float64) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.rnd.Float64() < p
}

// flakyPayment is a Payment whose charges and refunds fail by f.
type flakyPayment struct {
	Payment
	f *faults
}

func (p flakyPayment) Charge(ctx context.Context, r payment.ChargeRequest) (payment.Charge, bool, error) {
	if p.f.roll(p.f.before) {
		return payment.Charge{}, false, unavailable
	}
	c, created, err := p.Payment.Charge(ctx, r)
	if err == nil && p.f.roll(p.f.after) {
		return payment.Charge{}, false, unavailable
	}
	return c, created, err
}

func (p flakyPayment) Refund(ctx context.Context, id string) (payment.Charge, bool, error) {
	if p.f.roll(p.f.before) {
		return payment.Charge{}, false, unavailable
	}
	c, refunded, err := p.Payment.Refund(ctx, id)
	if err == nil && p.f.roll(p.f.after) {
		return payment.Charge{}, false, unavailable
	}
	return c, refunded, err
}

// flakyInventory is an Inventory whose reserve, commit and release fail by f.
type flakyInventory struct {
	Inventory
	f *faults
}

func (i flakyInventory) call(f func() (inventory.Reservation, error)) (inventory.Reservation, error) {
	if i.f.roll(i.f.before) {
		return inventory.Reservation{}, unavailable
	}
	r, err := f()
	if err == nil && i.f.roll(i.f.after) {
		return inventory.Reservation{}, unavailable
	}
	return r, err
}

func (i flakyInventory) Reserve(ctx context.Context, orderID string, lines []inventory.Line) (inventory.Reservation, error) {
	return i.call(func() (inventory.Reservation, error) { return i.Inventory.Reserve(ctx, orderID, lines) })
}

func (i flakyInventory) Commit(ctx context.Context, orderID string) (inventory.Reservation, error) {
	return i.call(func() (inventory.Reservation, error) { return i.Inventory.Commit(ctx, orderID) })
}

func (i flakyInventory) Release(ctx context.Context, orderID string) (inventory.Reservation, error) {
	return i.call(func() (inventory.Reservation, error) { return i.Inventory.Release(ctx, orderID) })
}
