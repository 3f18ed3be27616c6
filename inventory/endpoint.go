package inventory

import (
	"context"
	"time"

	"github.com/go-kit/kit/endpoint"

	"github.com/kitshop/kitshop/pkg/auth"
	"github.com/kitshop/kitshop/pkg/observe"
)

// Endpoints collects the inventory endpoints. On the server each one calls the
// Service; on the client each one calls a remote instance, and Endpoints itself
// satisfies Service.
type Endpoints struct {
	ListProductsEndpoint   endpoint.Endpoint
	GetProductEndpoint     endpoint.Endpoint
	CreateProductEndpoint  endpoint.Endpoint
	SetStockEndpoint       endpoint.Endpoint
	ReserveEndpoint        endpoint.Endpoint
	GetReservationEndpoint endpoint.Endpoint
	CommitEndpoint         endpoint.Endpoint
	ReleaseEndpoint        endpoint.Endpoint
}

// MakeServerEndpoints wires each endpoint to s, with admin routes behind v, and every
// endpoint observed (span, log line, metrics).
func MakeServerEndpoints(s Service, obs observe.Observer, v auth.Verifier) Endpoints {
	admin := auth.Admin(v)
	return Endpoints{
		ListProductsEndpoint:   obs.Endpoint("list_products", makeListProductsEndpoint(s)),
		GetProductEndpoint:     obs.Endpoint("get_product", makeGetProductEndpoint(s)),
		CreateProductEndpoint:  obs.Endpoint("create_product", admin(makeCreateProductEndpoint(s))),
		SetStockEndpoint:       obs.Endpoint("set_stock", admin(makeSetStockEndpoint(s))),
		ReserveEndpoint:        obs.Endpoint("reserve", makeReserveEndpoint(s)),
		GetReservationEndpoint: obs.Endpoint("get_reservation", makeGetReservationEndpoint(s)),
		CommitEndpoint:         obs.Endpoint("commit", makeCommitEndpoint(s)),
		ReleaseEndpoint:        obs.Endpoint("release", makeReleaseEndpoint(s)),
	}
}

// Wire types.

type productView struct {
	SKU         string `json:"sku"`
	Name        string `json:"name"`
	Description string `json:"description"`
	Category    string `json:"category"`
	Price       Money  `json:"price"`
	Available   int    `json:"available"`
}

func viewProduct(p Product) productView {
	return productView{SKU: p.SKU, Name: p.Name, Description: p.Description, Category: p.Category, Price: p.Price, Available: p.Available()}
}

// product is what a client knows from the public view: stock is what is available.
func (v productView) product() Product {
	return Product{SKU: v.SKU, Name: v.Name, Description: v.Description, Category: v.Category, Price: v.Price, Stock: v.Available}
}

// stockView is the admin view of a product.
type stockView struct {
	productView
	Stock     int       `json:"stock"`
	Reserved  int       `json:"reserved"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
	created   bool
}

func viewStock(p Product) stockView {
	return stockView{productView: viewProduct(p), Stock: p.Stock, Reserved: p.Reserved, CreatedAt: p.CreatedAt, UpdatedAt: p.UpdatedAt}
}

func (v stockView) product() Product {
	p := v.productView.product()
	p.Stock, p.Reserved, p.CreatedAt, p.UpdatedAt = v.Stock, v.Reserved, v.CreatedAt, v.UpdatedAt
	return p
}

// StatusCode answers 201 for a product just created.
func (v stockView) StatusCode() int {
	if v.created {
		return 201
	}
	return 200
}

type listProductsRequest struct {
	Category string
	Limit    int
	Cursor   string
}

type listProductsResponse struct {
	Products   []productView `json:"products"`
	NextCursor string        `json:"next_cursor"`
}

type getProductRequest struct{ SKU string }

type createProductRequest struct {
	SKU         string `json:"sku"`
	Name        string `json:"name"`
	Description string `json:"description"`
	// omitempty: a client that does not set it sends nothing an instance of the
	// release before categories, which refuses unknown fields, would turn away.
	Category string `json:"category,omitempty"`
	Price    Money  `json:"price"`
	Stock    int    `json:"stock"`
}

type setStockRequest struct {
	SKU   string `json:"-"`
	Stock *int   `json:"stock"`
}

type reserveRequest struct {
	OrderID string `json:"order_id"`
	Lines   []Line `json:"lines"`
}

type orderIDRequest struct{ OrderID string }

type reservationView struct {
	OrderID   string         `json:"order_id"`
	Status    string         `json:"status"`
	Lines     []ReservedLine `json:"lines"`
	ExpiresAt time.Time      `json:"expires_at"`
	CreatedAt time.Time      `json:"created_at"`
	UpdatedAt time.Time      `json:"updated_at"`
}

func viewReservation(r Reservation) reservationView {
	lines := r.Lines
	if lines == nil {
		lines = []ReservedLine{}
	}
	return reservationView{OrderID: r.OrderID, Status: r.Status, Lines: lines, ExpiresAt: r.ExpiresAt, CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt}
}

func (v reservationView) reservation() Reservation {
	return Reservation{OrderID: v.OrderID, Status: v.Status, Lines: v.Lines, ExpiresAt: v.ExpiresAt, CreatedAt: v.CreatedAt, UpdatedAt: v.UpdatedAt}
}

// Server endpoints.

func makeListProductsEndpoint(s Service) endpoint.Endpoint {
	return func(ctx context.Context, request any) (any, error) {
		req := request.(listProductsRequest)
		page, err := s.ListProducts(ctx, req.Category, req.Limit, req.Cursor)
		if err != nil {
			return nil, err
		}
		resp := listProductsResponse{Products: make([]productView, len(page.Products)), NextCursor: page.NextCursor}
		for i, p := range page.Products {
			resp.Products[i] = viewProduct(p)
		}
		return resp, nil
	}
}

func makeGetProductEndpoint(s Service) endpoint.Endpoint {
	return func(ctx context.Context, request any) (any, error) {
		p, err := s.GetProduct(ctx, request.(getProductRequest).SKU)
		if err != nil {
			return nil, err
		}
		return viewProduct(p), nil
	}
}

func makeCreateProductEndpoint(s Service) endpoint.Endpoint {
	return func(ctx context.Context, request any) (any, error) {
		req := request.(createProductRequest)
		p, err := s.CreateProduct(ctx, Product{SKU: req.SKU, Name: req.Name, Description: req.Description, Category: req.Category, Price: req.Price, Stock: req.Stock})
		if err != nil {
			return nil, err
		}
		v := viewStock(p)
		v.created = true
		return v, nil
	}
}

func makeSetStockEndpoint(s Service) endpoint.Endpoint {
	return func(ctx context.Context, request any) (any, error) {
		req := request.(setStockRequest)
		if req.Stock == nil {
			return nil, ErrInvalidStock.WithMessage("field \"stock\" is required")
		}
		p, err := s.SetStock(ctx, req.SKU, *req.Stock)
		if err != nil {
			return nil, err
		}
		return viewStock(p), nil
	}
}

func makeReserveEndpoint(s Service) endpoint.Endpoint {
	return func(ctx context.Context, request any) (any, error) {
		req := request.(reserveRequest)
		r, err := s.Reserve(ctx, req.OrderID, req.Lines)
		if err != nil {
			return nil, err
		}
		return viewReservation(r), nil
	}
}

func makeGetReservationEndpoint(s Service) endpoint.Endpoint {
	return reservationEndpoint(s.GetReservation)
}

func makeCommitEndpoint(s Service) endpoint.Endpoint { return reservationEndpoint(s.Commit) }

func makeReleaseEndpoint(s Service) endpoint.Endpoint { return reservationEndpoint(s.Release) }

func reservationEndpoint(f func(context.Context, string) (Reservation, error)) endpoint.Endpoint {
	return func(ctx context.Context, request any) (any, error) {
		r, err := f(ctx, request.(orderIDRequest).OrderID)
		if err != nil {
			return nil, err
		}
		return viewReservation(r), nil
	}
}

// Client side: Endpoints as a Service.

func (e Endpoints) ListProducts(ctx context.Context, category string, limit int, cursor string) (Page, error) {
	resp, err := e.ListProductsEndpoint(ctx, listProductsRequest{Category: category, Limit: limit, Cursor: cursor})
	if err != nil {
		return Page{}, err
	}
	list := resp.(listProductsResponse)
	page := Page{Products: make([]Product, len(list.Products)), NextCursor: list.NextCursor}
	for i, v := range list.Products {
		page.Products[i] = v.product()
	}
	return page, nil
}

func (e Endpoints) GetProduct(ctx context.Context, sku string) (Product, error) {
	resp, err := e.GetProductEndpoint(ctx, getProductRequest{SKU: sku})
	if err != nil {
		return Product{}, err
	}
	return resp.(productView).product(), nil
}

func (e Endpoints) CreateProduct(ctx context.Context, p Product) (Product, error) {
	resp, err := e.CreateProductEndpoint(ctx, createProductRequest{SKU: p.SKU, Name: p.Name, Description: p.Description, Category: p.Category, Price: p.Price, Stock: p.Stock})
	if err != nil {
		return Product{}, err
	}
	return resp.(stockView).product(), nil
}

func (e Endpoints) SetStock(ctx context.Context, sku string, stock int) (Product, error) {
	resp, err := e.SetStockEndpoint(ctx, setStockRequest{SKU: sku, Stock: &stock})
	if err != nil {
		return Product{}, err
	}
	return resp.(stockView).product(), nil
}

func (e Endpoints) Reserve(ctx context.Context, orderID string, lines []Line) (Reservation, error) {
	return callReservation(ctx, e.ReserveEndpoint, reserveRequest{OrderID: orderID, Lines: lines})
}

func (e Endpoints) GetReservation(ctx context.Context, orderID string) (Reservation, error) {
	return callReservation(ctx, e.GetReservationEndpoint, orderIDRequest{OrderID: orderID})
}

func (e Endpoints) Commit(ctx context.Context, orderID string) (Reservation, error) {
	return callReservation(ctx, e.CommitEndpoint, orderIDRequest{OrderID: orderID})
}

func (e Endpoints) Release(ctx context.Context, orderID string) (Reservation, error) {
	return callReservation(ctx, e.ReleaseEndpoint, orderIDRequest{OrderID: orderID})
}

func callReservation(ctx context.Context, e endpoint.Endpoint, request any) (Reservation, error) {
	resp, err := e(ctx, request)
	if err != nil {
		return Reservation{}, err
	}
	return resp.(reservationView).reservation(), nil
}
