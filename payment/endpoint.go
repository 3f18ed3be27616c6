package payment

import (
	"context"
	"net/http"
	"time"

	"github.com/go-kit/kit/endpoint"

	"github.com/kitshop/kitshop/pkg/observe"
)

// Endpoints are the payment service's endpoints. On the server they wrap a Service; in
// a client they call one over HTTP, and their methods make them a Service themselves.
type Endpoints struct {
	ChargeEndpoint      endpoint.Endpoint
	RefundEndpoint      endpoint.Endpoint
	GetChargeEndpoint   endpoint.Endpoint
	ListChargesEndpoint endpoint.Endpoint
}

// cardRequest is a card on the wire. It exists only in charge requests.
type cardRequest struct {
	Number   string `json:"number"`
	ExpMonth int    `json:"exp_month"`
	ExpYear  int    `json:"exp_year"`
	CVC      string `json:"cvc"`
}

type chargeRequest struct {
	OrderID string      `json:"order_id"`
	UserID  string      `json:"user_id"`
	Amount  Money       `json:"amount"`
	Card    cardRequest `json:"card"`
}

type chargeIDRequest struct{ ID string }

type listChargesRequest struct{ OrderID string }

type cardView struct {
	Brand string `json:"brand"`
	Last4 string `json:"last4"`
}

// chargeView is a charge on the wire.
type chargeView struct {
	ID          string     `json:"id"`
	OrderID     string     `json:"order_id"`
	UserID      string     `json:"user_id"`
	Status      string     `json:"status"`
	DeclineCode string     `json:"decline_code,omitempty"`
	Amount      Money      `json:"amount"`
	Card        cardView   `json:"card"`
	CreatedAt   time.Time  `json:"created_at"`
	RefundedAt  *time.Time `json:"refunded_at,omitempty"`
}

func viewCharge(c Charge) chargeView {
	v := chargeView{
		ID: c.ID, OrderID: c.OrderID, UserID: c.UserID, Status: c.Status, DeclineCode: c.DeclineCode,
		Amount: c.Amount, Card: cardView{Brand: c.Card.Brand, Last4: c.Card.Last4}, CreatedAt: c.CreatedAt,
	}
	if !c.RefundedAt.IsZero() {
		v.RefundedAt = &c.RefundedAt
	}
	return v
}

func (v chargeView) charge() Charge {
	c := Charge{
		ID: v.ID, OrderID: v.OrderID, UserID: v.UserID, Status: v.Status, DeclineCode: v.DeclineCode,
		Amount: v.Amount, Card: CardInfo{Brand: v.Card.Brand, Last4: v.Card.Last4}, CreatedAt: v.CreatedAt.UTC(),
	}
	if v.RefundedAt != nil {
		c.RefundedAt = v.RefundedAt.UTC()
	}
	return c
}

// chargeResponse is one charge. A replay (a repeated charge or refund that moved no
// money) carries the same body as the first answer; the transport marks it with a
// header, and a first charge is 201.
type chargeResponse struct {
	chargeView
	status   int
	replayed bool
}

func (r chargeResponse) StatusCode() int { return r.status }

// Replayed reports whether the answer repeats an earlier one.
func (r chargeResponse) Replayed() bool { return r.replayed }

type listChargesResponse struct {
	Charges []chargeView `json:"charges"`
}

// MakeServerEndpoints returns the endpoints of s, each observed by obs. The routes are
// internal: no caller authentication yet.
func MakeServerEndpoints(s Service, obs observe.Observer) Endpoints {
	return Endpoints{
		ChargeEndpoint:      obs.Endpoint("charge", makeChargeEndpoint(s)),
		RefundEndpoint:      obs.Endpoint("refund", makeRefundEndpoint(s)),
		GetChargeEndpoint:   obs.Endpoint("get_charge", makeGetChargeEndpoint(s)),
		ListChargesEndpoint: obs.Endpoint("list_charges", makeListChargesEndpoint(s)),
	}
}

func makeChargeEndpoint(s Service) endpoint.Endpoint {
	return func(ctx context.Context, request any) (any, error) {
		req := request.(chargeRequest)
		c, created, err := s.Charge(ctx, ChargeRequest{
			OrderID: req.OrderID,
			UserID:  req.UserID,
			Amount:  req.Amount,
			Card:    Card{Number: req.Card.Number, ExpMonth: req.Card.ExpMonth, ExpYear: req.Card.ExpYear, CVC: req.Card.CVC},
		})
		if err != nil {
			return nil, err
		}
		status := http.StatusOK
		if created {
			status = http.StatusCreated
		}
		return chargeResponse{chargeView: viewCharge(c), status: status, replayed: !created}, nil
	}
}

func makeRefundEndpoint(s Service) endpoint.Endpoint {
	return func(ctx context.Context, request any) (any, error) {
		c, refunded, err := s.Refund(ctx, request.(chargeIDRequest).ID)
		if err != nil {
			return nil, err
		}
		return chargeResponse{chargeView: viewCharge(c), status: http.StatusOK, replayed: !refunded}, nil
	}
}

func makeGetChargeEndpoint(s Service) endpoint.Endpoint {
	return func(ctx context.Context, request any) (any, error) {
		c, err := s.GetCharge(ctx, request.(chargeIDRequest).ID)
		if err != nil {
			return nil, err
		}
		return chargeResponse{chargeView: viewCharge(c), status: http.StatusOK}, nil
	}
}

func makeListChargesEndpoint(s Service) endpoint.Endpoint {
	return func(ctx context.Context, request any) (any, error) {
		charges, err := s.ListCharges(ctx, request.(listChargesRequest).OrderID)
		if err != nil {
			return nil, err
		}
		resp := listChargesResponse{Charges: make([]chargeView, len(charges))}
		for i, c := range charges {
			resp.Charges[i] = viewCharge(c)
		}
		return resp, nil
	}
}

// Charge calls the charge endpoint.
func (e Endpoints) Charge(ctx context.Context, r ChargeRequest) (Charge, bool, error) {
	resp, err := e.ChargeEndpoint(ctx, chargeRequest{
		OrderID: r.OrderID,
		UserID:  r.UserID,
		Amount:  r.Amount,
		Card:    cardRequest{Number: r.Card.Number, ExpMonth: r.Card.ExpMonth, ExpYear: r.Card.ExpYear, CVC: r.Card.CVC},
	})
	if err != nil {
		return Charge{}, false, err
	}
	cr := resp.(chargeResponse)
	return cr.charge(), !cr.replayed, nil
}

// Refund calls the refund endpoint.
func (e Endpoints) Refund(ctx context.Context, id string) (Charge, bool, error) {
	resp, err := e.RefundEndpoint(ctx, chargeIDRequest{ID: id})
	if err != nil {
		return Charge{}, false, err
	}
	cr := resp.(chargeResponse)
	return cr.charge(), !cr.replayed, nil
}

// GetCharge calls the get-charge endpoint.
func (e Endpoints) GetCharge(ctx context.Context, id string) (Charge, error) {
	resp, err := e.GetChargeEndpoint(ctx, chargeIDRequest{ID: id})
	if err != nil {
		return Charge{}, err
	}
	return resp.(chargeResponse).charge(), nil
}

// ListCharges calls the list-charges endpoint.
func (e Endpoints) ListCharges(ctx context.Context, orderID string) ([]Charge, error) {
	resp, err := e.ListChargesEndpoint(ctx, listChargesRequest{OrderID: orderID})
	if err != nil {
		return nil, err
	}
	lr := resp.(listChargesResponse)
	charges := make([]Charge, len(lr.Charges))
	for i, v := range lr.Charges {
		charges[i] = v.charge()
	}
	return charges, nil
}
