package inventory

import (
	"context"

	"github.com/go-kit/kit/sd"
	kitgrpc "github.com/go-kit/kit/transport/grpc"
	"github.com/openzipkin/zipkin-go"
	"google.golang.org/grpc"

	"github.com/kitshop/kitshop/inventory/pb"
	"github.com/kitshop/kitshop/pkg/client"
	"github.com/kitshop/kitshop/pkg/grpcwire"
)

// The gRPC services of inventory/pb, named for NewGRPCClient's routes and for the path
// rule that keeps reservations the order saga's (GRPCReservationsPrefix).
var (
	catalogueService    = pb.Catalogue_ServiceDesc.ServiceName
	reservationsService = pb.Reservations_ServiceDesc.ServiceName
)

// GRPCReservationsPrefix is the prefix of the reservation methods' full names, for a
// path rule (app.RestrictPaths) like the one on the HTTP routes under /internal/.
var GRPCReservationsPrefix = "/" + pb.Reservations_ServiceDesc.ServiceName + "/"

// RegisterGRPCServer serves the endpoints on s as the Catalogue and Reservations gRPC
// services: the same endpoints MakeHTTPHandler mounts, so a call is logged, measured,
// authorised and answered alike over either transport.
func RegisterGRPCServer(s grpc.ServiceRegistrar, e Endpoints, tracer *zipkin.Tracer) {
	opts := grpcwire.ServerOptions(tracer)
	pb.RegisterCatalogueServer(s, &catalogueServer{
		listProducts:  kitgrpc.NewServer(e.ListProductsEndpoint, decodeGRPCListProductsRequest, encodeGRPCProductPage, opts...),
		getProduct:    kitgrpc.NewServer(e.GetProductEndpoint, decodeGRPCGetProductRequest, encodeGRPCProduct, opts...),
		createProduct: kitgrpc.NewServer(e.CreateProductEndpoint, decodeGRPCCreateProductRequest, encodeGRPCProduct, opts...),
		setStock:      kitgrpc.NewServer(e.SetStockEndpoint, decodeGRPCSetStockRequest, encodeGRPCProduct, opts...),
	})
	pb.RegisterReservationsServer(s, &reservationsServer{
		reserve:        kitgrpc.NewServer(e.ReserveEndpoint, decodeGRPCReserveRequest, encodeGRPCReservation, opts...),
		getReservation: kitgrpc.NewServer(e.GetReservationEndpoint, decodeGRPCOrderIDRequest, encodeGRPCReservation, opts...),
		commit:         kitgrpc.NewServer(e.CommitEndpoint, decodeGRPCOrderIDRequest, encodeGRPCReservation, opts...),
		release:        kitgrpc.NewServer(e.ReleaseEndpoint, decodeGRPCOrderIDRequest, encodeGRPCReservation, opts...),
	})
}

type catalogueServer struct {
	pb.UnimplementedCatalogueServer
	listProducts, getProduct, createProduct, setStock kitgrpc.Handler
}

func (s *catalogueServer) ListProducts(ctx context.Context, req *pb.ListProductsRequest) (*pb.ProductPage, error) {
	return grpcwire.Serve[*pb.ProductPage](ctx, s.listProducts, req)
}

func (s *catalogueServer) GetProduct(ctx context.Context, req *pb.GetProductRequest) (*pb.Product, error) {
	return grpcwire.Serve[*pb.Product](ctx, s.getProduct, req)
}

func (s *catalogueServer) CreateProduct(ctx context.Context, req *pb.CreateProductRequest) (*pb.Product, error) {
	return grpcwire.Serve[*pb.Product](ctx, s.createProduct, req)
}

func (s *catalogueServer) SetStock(ctx context.Context, req *pb.SetStockRequest) (*pb.Product, error) {
	return grpcwire.Serve[*pb.Product](ctx, s.setStock, req)
}

type reservationsServer struct {
	pb.UnimplementedReservationsServer
	reserve, getReservation, commit, release kitgrpc.Handler
}

func (s *reservationsServer) Reserve(ctx context.Context, req *pb.ReserveRequest) (*pb.Reservation, error) {
	return grpcwire.Serve[*pb.Reservation](ctx, s.reserve, req)
}

func (s *reservationsServer) GetReservation(ctx context.Context, req *pb.OrderID) (*pb.Reservation, error) {
	return grpcwire.Serve[*pb.Reservation](ctx, s.getReservation, req)
}

func (s *reservationsServer) Commit(ctx context.Context, req *pb.OrderID) (*pb.Reservation, error) {
	return grpcwire.Serve[*pb.Reservation](ctx, s.commit, req)
}

func (s *reservationsServer) Release(ctx context.Context, req *pb.OrderID) (*pb.Reservation, error) {
	return grpcwire.Serve[*pb.Reservation](ctx, s.release, req)
}

// NewGRPCClient returns the inventory Service of the gRPC instances instancer finds
// (discovery.NewConsulGRPCInstancer), with NewHTTPClient's rules: reads, reservations
// (keyed by order ID), commits and releases are retried on another instance when one
// fails; product creation is not.
func NewGRPCClient(instancer sd.Instancer, opts client.Options) Service {
	c := client.NewGRPC("inventory", instancer, opts)
	return Endpoints{
		ListProductsEndpoint: c.Endpoint(client.GRPCRoute{Name: "list_products", Service: catalogueService, Method: "ListProducts",
			Encode: encodeGRPCListProductsRequest, Decode: decodeGRPCProductPage, Reply: &pb.ProductPage{}, Read: true, Idempotent: true}),
		GetProductEndpoint: c.Endpoint(client.GRPCRoute{Name: "get_product", Service: catalogueService, Method: "GetProduct",
			Encode: encodeGRPCGetProductRequest, Decode: decodeGRPCProductView, Reply: &pb.Product{}, Read: true, Idempotent: true}),
		CreateProductEndpoint: c.Endpoint(client.GRPCRoute{Name: "create_product", Service: catalogueService, Method: "CreateProduct",
			Encode: encodeGRPCCreateProductRequest, Decode: decodeGRPCStockView, Reply: &pb.Product{}}),
		SetStockEndpoint: c.Endpoint(client.GRPCRoute{Name: "set_stock", Service: catalogueService, Method: "SetStock",
			Encode: encodeGRPCSetStockRequest, Decode: decodeGRPCStockView, Reply: &pb.Product{}, Idempotent: true}),
		ReserveEndpoint: c.Endpoint(client.GRPCRoute{Name: "reserve", Service: reservationsService, Method: "Reserve",
			Encode: encodeGRPCReserveRequest, Decode: decodeGRPCReservation, Reply: &pb.Reservation{}, Idempotent: true}),
		GetReservationEndpoint: c.Endpoint(client.GRPCRoute{Name: "get_reservation", Service: reservationsService, Method: "GetReservation",
			Encode: encodeGRPCOrderIDRequest, Decode: decodeGRPCReservation, Reply: &pb.Reservation{}, Read: true, Idempotent: true}),
		CommitEndpoint: c.Endpoint(client.GRPCRoute{Name: "commit", Service: reservationsService, Method: "Commit",
			Encode: encodeGRPCOrderIDRequest, Decode: decodeGRPCReservation, Reply: &pb.Reservation{}, Idempotent: true}),
		ReleaseEndpoint: c.Endpoint(client.GRPCRoute{Name: "release", Service: reservationsService, Method: "Release",
			Encode: encodeGRPCOrderIDRequest, Decode: decodeGRPCReservation, Reply: &pb.Reservation{}, Idempotent: true}),
	}
}

// Server side: messages into the endpoints' requests, responses into messages.

func decodeGRPCListProductsRequest(_ context.Context, m any) (any, error) {
	req := m.(*pb.ListProductsRequest)
	if req.Limit < 0 {
		return nil, ErrInvalidLimit
	}
	return listProductsRequest{Category: req.Category, Limit: int(req.Limit), Cursor: req.Cursor}, nil
}

func decodeGRPCGetProductRequest(_ context.Context, m any) (any, error) {
	return getProductRequest{SKU: m.(*pb.GetProductRequest).Sku}, nil
}

func decodeGRPCCreateProductRequest(_ context.Context, m any) (any, error) {
	req := m.(*pb.CreateProductRequest)
	return createProductRequest{SKU: req.Sku, Name: req.Name, Description: req.Description, Category: req.Category,
		Price: moneyFromPB(req.Price), Stock: int(req.Stock)}, nil
}

func decodeGRPCSetStockRequest(_ context.Context, m any) (any, error) {
	req := m.(*pb.SetStockRequest)
	r := setStockRequest{SKU: req.Sku}
	if req.Stock != nil {
		stock := int(*req.Stock)
		r.Stock = &stock
	}
	return r, nil
}

func decodeGRPCReserveRequest(_ context.Context, m any) (any, error) {
	req := m.(*pb.ReserveRequest)
	lines := make([]Line, len(req.Lines))
	for i, l := range req.Lines {
		lines[i] = Line{SKU: l.Sku, Quantity: int(l.Quantity)}
	}
	return reserveRequest{OrderID: req.OrderId, Lines: lines}, nil
}

func decodeGRPCOrderIDRequest(_ context.Context, m any) (any, error) {
	return orderIDRequest{OrderID: m.(*pb.OrderID).OrderId}, nil
}

func encodeGRPCProductPage(_ context.Context, response any) (any, error) {
	resp := response.(listProductsResponse)
	page := &pb.ProductPage{Products: make([]*pb.Product, len(resp.Products)), NextCursor: resp.NextCursor}
	for i, v := range resp.Products {
		page.Products[i] = productToPB(v)
	}
	return page, nil
}

// encodeGRPCProduct writes the public view or, for the admin endpoints, the stock view.
func encodeGRPCProduct(_ context.Context, response any) (any, error) {
	switch v := response.(type) {
	case stockView:
		m := productToPB(v.productView)
		m.Stock, m.Reserved = int64(v.Stock), int64(v.Reserved)
		m.CreatedAt, m.UpdatedAt = grpcwire.Time(v.CreatedAt), grpcwire.Time(v.UpdatedAt)
		return m, nil
	default:
		return productToPB(v.(productView)), nil
	}
}

func encodeGRPCReservation(_ context.Context, response any) (any, error) {
	v := response.(reservationView)
	m := &pb.Reservation{OrderId: v.OrderID, Status: v.Status, Lines: make([]*pb.ReservedLine, len(v.Lines)),
		ExpiresAt: grpcwire.Time(v.ExpiresAt), CreatedAt: grpcwire.Time(v.CreatedAt), UpdatedAt: grpcwire.Time(v.UpdatedAt)}
	for i, l := range v.Lines {
		m.Lines[i] = &pb.ReservedLine{Sku: l.SKU, Name: l.Name, Quantity: int64(l.Quantity), UnitPrice: moneyToPB(l.UnitPrice)}
	}
	return m, nil
}

// Client side: requests into messages, replies into the views the endpoints return.

func encodeGRPCListProductsRequest(_ context.Context, request any) (any, error) {
	req := request.(listProductsRequest)
	return &pb.ListProductsRequest{Category: req.Category, Limit: int64(req.Limit), Cursor: req.Cursor}, nil
}

func encodeGRPCGetProductRequest(_ context.Context, request any) (any, error) {
	return &pb.GetProductRequest{Sku: request.(getProductRequest).SKU}, nil
}

func encodeGRPCCreateProductRequest(_ context.Context, request any) (any, error) {
	req := request.(createProductRequest)
	return &pb.CreateProductRequest{Sku: req.SKU, Name: req.Name, Description: req.Description, Category: req.Category,
		Price: moneyToPB(req.Price), Stock: int64(req.Stock)}, nil
}

func encodeGRPCSetStockRequest(_ context.Context, request any) (any, error) {
	req := request.(setStockRequest)
	m := &pb.SetStockRequest{Sku: req.SKU}
	if req.Stock != nil {
		stock := int64(*req.Stock)
		m.Stock = &stock
	}
	return m, nil
}

func encodeGRPCReserveRequest(_ context.Context, request any) (any, error) {
	req := request.(reserveRequest)
	m := &pb.ReserveRequest{OrderId: req.OrderID, Lines: make([]*pb.Line, len(req.Lines))}
	for i, l := range req.Lines {
		m.Lines[i] = &pb.Line{Sku: l.SKU, Quantity: int64(l.Quantity)}
	}
	return m, nil
}

func encodeGRPCOrderIDRequest(_ context.Context, request any) (any, error) {
	return &pb.OrderID{OrderId: request.(orderIDRequest).OrderID}, nil
}

func decodeGRPCProductPage(_ context.Context, reply any) (any, error) {
	m := reply.(*pb.ProductPage)
	resp := listProductsResponse{Products: make([]productView, len(m.Products)), NextCursor: m.NextCursor}
	for i, p := range m.Products {
		resp.Products[i] = productFromPB(p)
	}
	return resp, nil
}

func decodeGRPCProductView(_ context.Context, reply any) (any, error) {
	return productFromPB(reply.(*pb.Product)), nil
}

func decodeGRPCStockView(_ context.Context, reply any) (any, error) {
	m := reply.(*pb.Product)
	return stockView{productView: productFromPB(m), Stock: int(m.Stock), Reserved: int(m.Reserved),
		CreatedAt: grpcwire.FromTime(m.CreatedAt), UpdatedAt: grpcwire.FromTime(m.UpdatedAt)}, nil
}

func decodeGRPCReservation(_ context.Context, reply any) (any, error) {
	m := reply.(*pb.Reservation)
	v := reservationView{OrderID: m.OrderId, Status: m.Status, Lines: make([]ReservedLine, len(m.Lines)),
		ExpiresAt: grpcwire.FromTime(m.ExpiresAt), CreatedAt: grpcwire.FromTime(m.CreatedAt), UpdatedAt: grpcwire.FromTime(m.UpdatedAt)}
	for i, l := range m.Lines {
		v.Lines[i] = ReservedLine{SKU: l.Sku, Name: l.Name, Quantity: int(l.Quantity), UnitPrice: moneyFromPB(l.UnitPrice)}
	}
	return v, nil
}

func productToPB(v productView) *pb.Product {
	return &pb.Product{Sku: v.SKU, Name: v.Name, Description: v.Description, Category: v.Category,
		Price: moneyToPB(v.Price), Available: int64(v.Available)}
}

func productFromPB(m *pb.Product) productView {
	return productView{SKU: m.Sku, Name: m.Name, Description: m.Description, Category: m.Category,
		Price: moneyFromPB(m.Price), Available: int(m.Available)}
}

func moneyToPB(m Money) *pb.Money { return &pb.Money{Amount: m.Amount, Currency: m.Currency} }

func moneyFromPB(m *pb.Money) Money { return Money{Amount: m.GetAmount(), Currency: m.GetCurrency()} }
