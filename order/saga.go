package order

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/go-kit/kit/metrics"
	"github.com/go-kit/kit/metrics/discard"
	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/openzipkin/zipkin-go"

	"github.com/kitshop/kitshop/inventory"
	"github.com/kitshop/kitshop/payment"
	"github.com/kitshop/kitshop/pkg/backoff"
	"github.com/kitshop/kitshop/pkg/errs"
	"github.com/kitshop/kitshop/pkg/logging"
	"github.com/kitshop/kitshop/pkg/observe"
	"github.com/kitshop/kitshop/pkg/outbox"
)

// Saga drives checkouts and cancellations, step by step, persisting each step before
// the next remote call. One Saga serves a process: the requests it runs continue in the
// background when they outlive their request, and Recover resumes the sagas any
// instance left behind.
type Saga struct {
	store Store
	inv   Inventory
	pay   Payment
	cfg   Config

	steps   metrics.Counter
	pending metrics.Gauge

	base   context.Context // background runs end when it does
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// NewSaga returns the saga runner. Its metrics are kitshop_saga_steps_total{step,
// outcome} (every remote call of a saga) and kitshop_order_pending_orders.
func NewSaga(store Store, inv Inventory, pay Payment, cfg Config) *Saga {
	cfg = cfg.withDefaults()
	s := &Saga{store: store, inv: inv, pay: pay, cfg: cfg,
		steps: discard.NewCounter(), pending: discard.NewGauge()}
	if cfg.Metrics != nil {
		s.steps = cfg.Metrics.Counter("saga", "steps_total", "Remote calls of checkout and cancellation sagas, by step and outcome.", "step", "outcome")
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
	lease := Lease{Token: newToken(), Until: now.Add(s.cfg.RecoveryGrace)}
	orders, err := s.store.ClaimStale(ctx, lease, now, recoveryBatch)
	if err != nil {
		return 0, err
	}
	// A recovery pass must end before its lease does, so no other driver joins in.
	ctx, cancel := context.WithTimeout(ctx, s.cfg.RecoveryGrace/2)
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
			next, err = s.refundCancellation(ctx, o, token)
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
	until := now.Add(s.cfg.RecoveryGrace)
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
		if !backoff.Sleep(ctx, s.cfg.Backoff.Delay(attempt)) {
			return err
		}
	}
}

// fail starts compensating o for cause.
func (s *Saga) fail(ctx context.Context, o Order, token string, cause *errs.Error) (Order, error) {
	return s.advance(ctx, o, token, Change{Status: StatusPending, Step: StepCompensating, FailureCode: cause.Code, FailureMessage: cause.Message})
}

// call makes one remote call of a saga step, trying again with backoff while the
// service is down (any failure that is not a business answer), keeping the lease. Past
// deadline (when not zero) it stops with errTooLate.
func (s *Saga) call(ctx context.Context, o Order, token, step string, deadline time.Time, f func(context.Context) error) error {
	if s.cfg.Tracer != nil {
		var span zipkin.Span
		span, ctx = s.cfg.Tracer.StartSpanFromContext(ctx, "saga."+step)
		span.Tag("order_id", o.ID)
		defer span.Finish()
	}
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			if !backoff.Sleep(ctx, s.cfg.Backoff.Delay(attempt-1)) {
				return ctx.Err()
			}
			now := s.now()
			if !deadline.IsZero() && now.After(deadline) {
				return errTooLate
			}
			if err := s.persist(ctx, func() error {
				return s.store.Touch(ctx, o.ID, Lease{Token: token, Until: now.Add(s.cfg.RecoveryGrace)})
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

// reservationExpiry is when a checkout stops moving forward and is compensated
// instead: when its reservation would expire.
func (s *Saga) reservationExpiry(o Order) time.Time { return o.CreatedAt.Add(s.cfg.ReservationTTL) }

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
	err := s.call(ctx, o, token, "reserve", s.reservationExpiry(o), func(ctx context.Context) error {
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
		err = s.call(ctx, o, token, "charge", s.reservationExpiry(o), func(ctx context.Context) error {
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
	err := s.call(ctx, o, token, "commit", s.reservationExpiry(o), func(ctx context.Context) error {
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

// refundCharge refunds chargeID; a declined charge moved no money and needs none.
func (s *Saga) refundCharge(ctx context.Context, o Order, token, chargeID string) error {
	err := s.call(ctx, o, token, "refund", time.Time{}, func(ctx context.Context) error {
		_, _, err := s.pay.Refund(ctx, chargeID)
		return err
	})
	if errors.Is(err, payment.ErrChargeNotRefundable) {
		return nil
	}
	return err
}

// refundCancellation is the first step of a cancellation: the order's charge is
// refunded.
func (s *Saga) refundCancellation(ctx context.Context, o Order, token string) (Order, error) {
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
