package payment

import (
	"context"
	"net/http"

	"github.com/go-kit/kit/sd"
	kitgrpc "github.com/go-kit/kit/transport/grpc"
	"github.com/openzipkin/zipkin-go"
	"google.golang.org/grpc"

	"github.com/kitshop/kitshop/payment/pb"
	"github.com/kitshop/kitshop/pkg/client"
	"github.com/kitshop/kitshop/pkg/grpcwire"
)

// chargesService is the gRPC service of payment/pb.
var chargesService = pb.Charges_ServiceDesc.ServiceName

// GRPCPrefix is the prefix of every payment method's full name, for the path rule
// (app.RestrictPaths) that keeps them the order saga's, like the HTTP routes under
// /internal/.
var GRPCPrefix = "/" + pb.Charges_ServiceDesc.ServiceName + "/"

// RegisterGRPCServer serves the endpoints on s as the Charges gRPC service: the same
// endpoints MakeHTTPHandler mounts.
func RegisterGRPCServer(s grpc.ServiceRegistrar, e Endpoints, tracer *zipkin.Tracer) {
	opts := grpcwire.ServerOptions(tracer)
	pb.RegisterChargesServer(s, &chargesServer{
		charge:      kitgrpc.NewServer(e.ChargeEndpoint, decodeGRPCChargeRequest, encodeGRPCChargeReply, opts...),
		refund:      kitgrpc.NewServer(e.RefundEndpoint, decodeGRPCChargeIDRequest, encodeGRPCChargeReply, opts...),
		getCharge:   kitgrpc.NewServer(e.GetChargeEndpoint, decodeGRPCChargeIDRequest, encodeGRPCChargeReply, opts...),
		listCharges: kitgrpc.NewServer(e.ListChargesEndpoint, decodeGRPCListChargesRequest, encodeGRPCChargeList, opts...),
	})
}

type chargesServer struct {
	pb.UnimplementedChargesServer
	charge, refund, getCharge, listCharges kitgrpc.Handler
}

func (s *chargesServer) Charge(ctx context.Context, req *pb.ChargeRequest) (*pb.ChargeReply, error) {
	return grpcwire.Serve[*pb.ChargeReply](ctx, s.charge, req)
}

func (s *chargesServer) Refund(ctx context.Context, req *pb.ChargeID) (*pb.ChargeReply, error) {
	return grpcwire.Serve[*pb.ChargeReply](ctx, s.refund, req)
}

func (s *chargesServer) GetCharge(ctx context.Context, req *pb.ChargeID) (*pb.ChargeReply, error) {
	return grpcwire.Serve[*pb.ChargeReply](ctx, s.getCharge, req)
}

func (s *chargesServer) ListCharges(ctx context.Context, req *pb.ListChargesRequest) (*pb.ChargeList, error) {
	return grpcwire.Serve[*pb.ChargeList](ctx, s.listCharges, req)
}

// NewGRPCClient returns the payment Service of the gRPC instances instancer finds
// (discovery.NewConsulGRPCInstancer), with NewHTTPClient's rules: every call is keyed
// and so retried; a declined card is a charge, not an error.
func NewGRPCClient(instancer sd.Instancer, opts client.Options) Service {
	c := client.NewGRPC("payment", instancer, opts)
	return Endpoints{
		ChargeEndpoint: c.Endpoint(client.GRPCRoute{Name: "charge", Service: chargesService, Method: "Charge",
			Encode: encodeGRPCChargeRequest, Decode: decodeGRPCChargeReply, Reply: &pb.ChargeReply{}, Idempotent: true}),
		RefundEndpoint: c.Endpoint(client.GRPCRoute{Name: "refund", Service: chargesService, Method: "Refund",
			Encode: encodeGRPCChargeIDRequest, Decode: decodeGRPCChargeReply, Reply: &pb.ChargeReply{}, Idempotent: true}),
		GetChargeEndpoint: c.Endpoint(client.GRPCRoute{Name: "get_charge", Service: chargesService, Method: "GetCharge",
			Encode: encodeGRPCChargeIDRequest, Decode: decodeGRPCChargeReply, Reply: &pb.ChargeReply{}, Read: true, Idempotent: true}),
		ListChargesEndpoint: c.Endpoint(client.GRPCRoute{Name: "list_charges", Service: chargesService, Method: "ListCharges",
			Encode: encodeGRPCListChargesRequest, Decode: decodeGRPCChargeList, Reply: &pb.ChargeList{}, Read: true, Idempotent: true}),
	}
}

// Server side.

func decodeGRPCChargeRequest(_ context.Context, m any) (any, error) {
	req := m.(*pb.ChargeRequest)
	card := req.GetCard()
	return chargeRequest{OrderID: req.OrderId, UserID: req.UserId, Amount: moneyFromPB(req.Amount),
		Card: cardRequest{Number: card.GetNumber(), ExpMonth: int(card.GetExpMonth()), ExpYear: int(card.GetExpYear()), CVC: card.GetCvc()}}, nil
}

func decodeGRPCChargeIDRequest(_ context.Context, m any) (any, error) {
	return chargeIDRequest{ID: m.(*pb.ChargeID).Id}, nil
}

func decodeGRPCListChargesRequest(_ context.Context, m any) (any, error) {
	return listChargesRequest{OrderID: m.(*pb.ListChargesRequest).OrderId}, nil
}

func encodeGRPCChargeReply(_ context.Context, response any) (any, error) {
	r := response.(chargeResponse)
	return &pb.ChargeReply{Charge: chargeToPB(r.chargeView), Created: r.status == http.StatusCreated, Replayed: r.replayed}, nil
}

func encodeGRPCChargeList(_ context.Context, response any) (any, error) {
	r := response.(listChargesResponse)
	m := &pb.ChargeList{Charges: make([]*pb.Charge, len(r.Charges))}
	for i, v := range r.Charges {
		m.Charges[i] = chargeToPB(v)
	}
	return m, nil
}

// Client side.

func encodeGRPCChargeRequest(_ context.Context, request any) (any, error) {
	req := request.(chargeRequest)
	return &pb.ChargeRequest{OrderId: req.OrderID, UserId: req.UserID, Amount: moneyToPB(req.Amount),
		Card: &pb.Card{Number: req.Card.Number, ExpMonth: int32(req.Card.ExpMonth), ExpYear: int32(req.Card.ExpYear), Cvc: req.Card.CVC}}, nil
}

func encodeGRPCChargeIDRequest(_ context.Context, request any) (any, error) {
	return &pb.ChargeID{Id: request.(chargeIDRequest).ID}, nil
}

func encodeGRPCListChargesRequest(_ context.Context, request any) (any, error) {
	return &pb.ListChargesRequest{OrderId: request.(listChargesRequest).OrderID}, nil
}

func decodeGRPCChargeReply(_ context.Context, reply any) (any, error) {
	m := reply.(*pb.ChargeReply)
	status := http.StatusOK
	if m.Created {
		status = http.StatusCreated
	}
	return chargeResponse{chargeView: chargeFromPB(m.Charge), status: status, replayed: m.Replayed}, nil
}

func decodeGRPCChargeList(_ context.Context, reply any) (any, error) {
	m := reply.(*pb.ChargeList)
	r := listChargesResponse{Charges: make([]chargeView, len(m.Charges))}
	for i, c := range m.Charges {
		r.Charges[i] = chargeFromPB(c)
	}
	return r, nil
}

func chargeToPB(v chargeView) *pb.Charge {
	m := &pb.Charge{Id: v.ID, OrderId: v.OrderID, UserId: v.UserID, Status: v.Status, DeclineCode: v.DeclineCode,
		Amount: moneyToPB(v.Amount), CardBrand: v.Card.Brand, CardLast4: v.Card.Last4, CreatedAt: grpcwire.Time(v.CreatedAt)}
	if v.RefundedAt != nil {
		m.RefundedAt = grpcwire.Time(*v.RefundedAt)
	}
	return m
}

func chargeFromPB(m *pb.Charge) chargeView {
	v := chargeView{ID: m.GetId(), OrderID: m.GetOrderId(), UserID: m.GetUserId(), Status: m.GetStatus(), DeclineCode: m.GetDeclineCode(),
		Amount: moneyFromPB(m.GetAmount()), Card: cardView{Brand: m.GetCardBrand(), Last4: m.GetCardLast4()}, CreatedAt: grpcwire.FromTime(m.GetCreatedAt())}
	if m.GetRefundedAt() != nil {
		t := grpcwire.FromTime(m.RefundedAt)
		v.RefundedAt = &t
	}
	return v
}

func moneyToPB(m Money) *pb.Money { return &pb.Money{Amount: m.Amount, Currency: m.Currency} }

func moneyFromPB(m *pb.Money) Money { return Money{Amount: m.GetAmount(), Currency: m.GetCurrency()} }
