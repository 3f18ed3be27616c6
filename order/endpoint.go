package order

import (
	"context"
	"net/http"
	"time"

	"github.com/go-kit/kit/endpoint"

	"github.com/kitshop/kitshop/pkg/auth"
	"github.com/kitshop/kitshop/pkg/observe"
)

// Endpoints collects the order endpoints. On the server each one calls the Service; on
// the client each one calls a remote instance, and Endpoints itself satisfies Service.
type Endpoints struct {
	GetCartEndpoint        endpoint.Endpoint
	SetCartItemEndpoint    endpoint.Endpoint
	RemoveCartItemEndpoint endpoint.Endpoint
	PlaceOrderEndpoint     endpoint.Endpoint
	ListOrdersEndpoint     endpoint.Endpoint
	GetOrderEndpoint       endpoint.Endpoint
	CancelOrderEndpoint    endpoint.Endpoint
}

// MakeServerEndpoints wires each endpoint to s, every one behind v (a customer's token)
// and observed (span, log line, metrics).
func MakeServerEndpoints(s Service, obs observe.Observer, v auth.Verifier) Endpoints {
	authn := auth.Authenticated(v)
	return Endpoints{
		GetCartEndpoint:        obs.Endpoint("get_cart", authn(makeGetCartEndpoint(s))),
		SetCartItemEndpoint:    obs.Endpoint("set_cart_item", authn(makeSetCartItemEndpoint(s))),
		RemoveCartItemEndpoint: obs.Endpoint("remove_cart_item", authn(makeRemoveCartItemEndpoint(s))),
		PlaceOrderEndpoint:     obs.Endpoint("place_order", authn(makePlaceOrderEndpoint(s))),
		ListOrdersEndpoint:     obs.Endpoint("list_orders", authn(makeListOrdersEndpoint(s))),
		GetOrderEndpoint:       obs.Endpoint("get_order", authn(makeGetOrderEndpoint(s))),
		CancelOrderEndpoint:    obs.Endpoint("cancel_order", authn(makeCancelOrderEndpoint(s))),
	}
}

// Wire types.

type cartItemView struct {
	SKU       string `json:"sku"`
	Name      string `json:"name"`
	Quantity  int    `json:"quantity"`
	UnitPrice Money  `json:"unit_price"`
	LineTotal Money  `json:"line_total"`
}

type cartView struct {
	Items []cartItemView `json:"items"`
	Total Money          `json:"total"`
}

func viewCart(c Cart) cartView {
	v := cartView{Items: make([]cartItemView, len(c.Items)), Total: c.Total}
	for i, it := range c.Items {
		v.Items[i] = cartItemView(it)
	}
	return v
}

func (v cartView) cart() Cart {
	c := Cart{Items: make([]CartItem, len(v.Items)), Total: v.Total}
	for i, it := range v.Items {
		c.Items[i] = CartItem(it)
	}
	return c
}

type setCartItemRequest struct {
	SKU      string `json:"-"`
	Quantity *int   `json:"quantity"`
}

type skuRequest struct{ SKU string }

type cardRequest struct {
	CardNumber string `json:"card_number"`
	ExpMonth   int    `json:"exp_month"`
	ExpYear    int    `json:"exp_year"`
	CVC        string `json:"cvc"`
}

type placeOrderRequest struct {
	IdempotencyKey string       `json:"-"`
	Payment        *cardRequest `json:"payment"`
	Items          []Line       `json:"items,omitempty"`
}

type failureView struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

type orderView struct {
	ID        string       `json:"id"`
	UserID    string       `json:"user_id"`
	Status    string       `json:"status"`
	Items     []Item       `json:"items"`
	Total     Money        `json:"total"`
	Failure   *failureView `json:"failure,omitempty"`
	CreatedAt time.Time    `json:"created_at"`
	UpdatedAt time.Time    `json:"updated_at"`
	status    int
}

func viewOrder(o Order) orderView {
	v := orderView{ID: o.ID, UserID: o.UserID, Status: o.Status, Items: o.Items, Total: o.Total, CreatedAt: o.CreatedAt, UpdatedAt: o.UpdatedAt}
	if v.Items == nil {
		v.Items = []Item{}
	}
	if o.FailureCode != "" {
		v.Failure = &failureView{Code: o.FailureCode, Message: o.FailureMessage}
	}
	return v
}

func (v orderView) order() Order {
	o := Order{ID: v.ID, UserID: v.UserID, Status: v.Status, Items: v.Items, Total: v.Total, CreatedAt: v.CreatedAt.UTC(), UpdatedAt: v.UpdatedAt.UTC()}
	if v.Failure != nil {
		o.FailureCode, o.FailureMessage = v.Failure.Code, v.Failure.Message
	}
	return o
}

// StatusCode is the order's answer status: 202 while its saga is still under way.
func (v orderView) StatusCode() int {
	if v.status == 0 {
		return http.StatusOK
	}
	return v.status
}

type listOrdersResponse struct {
	Orders []orderView `json:"orders"`
}

type orderIDRequest struct{ ID string }

// Server endpoints.

func makeGetCartEndpoint(s Service) endpoint.Endpoint {
	return func(ctx context.Context, _ any) (any, error) {
		c, err := s.GetCart(ctx)
		if err != nil {
			return nil, err
		}
		return viewCart(c), nil
	}
}

func makeSetCartItemEndpoint(s Service) endpoint.Endpoint {
	return func(ctx context.Context, request any) (any, error) {
		req := request.(setCartItemRequest)
		if req.Quantity == nil {
			return nil, ErrInvalidQuantity.WithMessage("field \"quantity\" is required (0 to %d; 0 removes the line)", MaxQuantity)
		}
		c, err := s.SetCartItem(ctx, req.SKU, *req.Quantity)
		if err != nil {
			return nil, err
		}
		return viewCart(c), nil
	}
}

func makeRemoveCartItemEndpoint(s Service) endpoint.Endpoint {
	return func(ctx context.Context, request any) (any, error) {
		c, err := s.RemoveCartItem(ctx, request.(skuRequest).SKU)
		if err != nil {
			return nil, err
		}
		return viewCart(c), nil
	}
}

func makePlaceOrderEndpoint(s Service) endpoint.Endpoint {
	return func(ctx context.Context, request any) (any, error) {
		req := request.(placeOrderRequest)
		var card Card
		if req.Payment != nil {
			card = Card{Number: req.Payment.CardNumber, ExpMonth: req.Payment.ExpMonth, ExpYear: req.Payment.ExpYear, CVC: req.Payment.CVC}
		}
		o, err := s.PlaceOrder(ctx, req.IdempotencyKey, Checkout{Items: req.Items, Card: card})
		if err != nil {
			return nil, err
		}
		v := viewOrder(o)
		v.status = http.StatusCreated
		if o.Status == StatusPending {
			v.status = http.StatusAccepted
		}
		return v, nil
	}
}

func makeListOrdersEndpoint(s Service) endpoint.Endpoint {
	return func(ctx context.Context, _ any) (any, error) {
		orders, err := s.ListOrders(ctx)
		if err != nil {
			return nil, err
		}
		resp := listOrdersResponse{Orders: make([]orderView, len(orders))}
		for i, o := range orders {
			resp.Orders[i] = viewOrder(o)
		}
		return resp, nil
	}
}

func makeGetOrderEndpoint(s Service) endpoint.Endpoint {
	return func(ctx context.Context, request any) (any, error) {
		o, err := s.GetOrder(ctx, request.(orderIDRequest).ID)
		if err != nil {
			return nil, err
		}
		return viewOrder(o), nil
	}
}

func makeCancelOrderEndpoint(s Service) endpoint.Endpoint {
	return func(ctx context.Context, request any) (any, error) {
		o, err := s.CancelOrder(ctx, request.(orderIDRequest).ID)
		if err != nil {
			return nil, err
		}
		v := viewOrder(o)
		if o.Status != StatusCancelled {
			v.status = http.StatusAccepted
		}
		return v, nil
	}
}

// Client side: Endpoints as a Service. Calls carry the caller's token from the context.

func (e Endpoints) GetCart(ctx context.Context) (Cart, error) {
	return callCart(ctx, e.GetCartEndpoint, nil)
}

func (e Endpoints) SetCartItem(ctx context.Context, sku string, quantity int) (Cart, error) {
	return callCart(ctx, e.SetCartItemEndpoint, setCartItemRequest{SKU: sku, Quantity: &quantity})
}

func (e Endpoints) RemoveCartItem(ctx context.Context, sku string) (Cart, error) {
	return callCart(ctx, e.RemoveCartItemEndpoint, skuRequest{SKU: sku})
}

func callCart(ctx context.Context, e endpoint.Endpoint, request any) (Cart, error) {
	resp, err := e(ctx, request)
	if err != nil {
		return Cart{}, err
	}
	return resp.(cartView).cart(), nil
}

func (e Endpoints) PlaceOrder(ctx context.Context, key string, c Checkout) (Order, error) {
	req := placeOrderRequest{IdempotencyKey: key, Items: c.Items}
	if c.Card != (Card{}) {
		req.Payment = &cardRequest{CardNumber: c.Card.Number, ExpMonth: c.Card.ExpMonth, ExpYear: c.Card.ExpYear, CVC: c.Card.CVC}
	}
	return callOrder(ctx, e.PlaceOrderEndpoint, req)
}

func (e Endpoints) ListOrders(ctx context.Context) ([]Order, error) {
	resp, err := e.ListOrdersEndpoint(ctx, nil)
	if err != nil {
		return nil, err
	}
	list := resp.(listOrdersResponse)
	orders := make([]Order, len(list.Orders))
	for i, v := range list.Orders {
		orders[i] = v.order()
	}
	return orders, nil
}

func (e Endpoints) GetOrder(ctx context.Context, id string) (Order, error) {
	return callOrder(ctx, e.GetOrderEndpoint, orderIDRequest{ID: id})
}

func (e Endpoints) CancelOrder(ctx context.Context, id string) (Order, error) {
	return callOrder(ctx, e.CancelOrderEndpoint, orderIDRequest{ID: id})
}

func callOrder(ctx context.Context, e endpoint.Endpoint, request any) (Order, error) {
	resp, err := e(ctx, request)
	if err != nil {
		return Order{}, err
	}
	return resp.(orderView).order(), nil
}
