package payment

import (
	"context"
	"errors"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/afex/hystrix-go/hystrix"
	consulsd "github.com/go-kit/kit/sd/consul"
	"github.com/go-kit/log"
	consul "github.com/hashicorp/consul/api"

	"github.com/kitshop/kitshop/pkg/client"
	"github.com/kitshop/kitshop/pkg/errs"
	"github.com/kitshop/kitshop/pkg/testenv"
)

// transports are the two ways a client reaches the payment service; every client test
// runs over each.
var transports = []string{"http", "grpc"}

// newConsulClient serves a payment service over transport, registers it in the real
// Consul under a name of its own and returns a client of that transport that finds it
// there, and the name of the client's breaker.
func newConsulClient(t *testing.T, proc Processor, transport string) (Service, string) {
	t.Helper()
	c, _ := testenv.Consul(t)
	addr := newTestServerOf(t, proc, transport)
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	port, _ := strconv.Atoi(portStr)
	name := testenv.Name("payment-test")
	reg := &consul.AgentServiceRegistration{
		ID: name, Name: name, Address: host, Port: port,
		Check: &consul.AgentServiceCheck{TTL: "1m", Status: consul.HealthPassing},
	}
	if err := c.Agent().ServiceRegister(reg); err != nil {
		t.Fatalf("register in consul: %v", err)
	}
	t.Cleanup(func() { _ = c.Agent().ServiceDeregister(name) })

	instancer := consulsd.NewInstancer(consulsd.NewClient(c), log.NewNopLogger(), name, nil, true)
	t.Cleanup(instancer.Stop)
	opts := client.Options{
		Caller:         name, // a breaker of its own, untouched by other tests
		Timeout:        2 * time.Second,
		AttemptTimeout: time.Second,
		Retries:        2,
		Breaker:        client.Breaker{MaxConcurrent: 100, ErrorPercent: 50, VolumeThreshold: 5, SleepWindow: time.Minute},
	}
	newClient := NewHTTPClient
	if transport == "grpc" {
		newClient = NewGRPCClient
	}
	svc := newClient(instancer, opts)
	// go-kit's endpointer takes the instancer's list in a goroutine of its own: until
	// it has, a call finds no instance.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		_, err := svc.GetCharge(context.Background(), "ch_none")
		if errs.From(err).Code != "service_unavailable" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the client found no instance: %v", err)
		}
	}
	return svc, name + "→payment"
}

func breakerOpen(t *testing.T, name string) bool {
	t.Helper()
	cb, _, err := hystrix.GetCircuit(name)
	if err != nil {
		t.Fatal(err)
	}
	return cb.IsOpen()
}

// overEach runs test once per transport.
func overEach(t *testing.T, test func(t *testing.T, transport string)) {
	for _, transport := range transports {
		t.Run(transport, func(t *testing.T) { test(t, transport) })
	}
}

// newTestServerOf serves a payment service over transport and returns its address.
func newTestServerOf(t *testing.T, proc Processor, transport string) string {
	t.Helper()
	if transport == "grpc" {
		return newTestGRPCServer(t, proc)
	}
	srv, _ := newTestServer(t, proc)
	return srv.Listener.Addr().String()
}

func TestClient(t *testing.T) { overEach(t, testClient) }

func testClient(t *testing.T, transport string) {
	ctx := context.Background()
	svc, breaker := newConsulClient(t, simulated(t), transport)

	c, created, err := svc.Charge(ctx, validRequest())
	if err != nil || !created || c.Status != StatusSucceeded || c.Card != (CardInfo{BrandVisa, "4242"}) || c.Amount != validRequest().Amount {
		t.Fatalf("charge = %+v, %v, %v", c, created, err)
	}
	again, created, err := svc.Charge(ctx, validRequest())
	if err != nil || created || again != c {
		t.Fatalf("repeat = %+v, %v, %v; want the first charge, not created", again, created, err)
	}
	if got, err := svc.GetCharge(ctx, c.ID); err != nil || got != c {
		t.Fatalf("get = %+v, %v", got, err)
	}
	if list, err := svc.ListCharges(ctx, c.OrderID); err != nil || len(list) != 1 || list[0] != c {
		t.Fatalf("list = %+v, %v", list, err)
	}
	r, refunded, err := svc.Refund(ctx, c.ID)
	if err != nil || !refunded || r.Status != StatusRefunded || r.RefundedAt.IsZero() {
		t.Fatalf("refund = %+v, %v, %v", r, refunded, err)
	}
	if again, refunded, err := svc.Refund(ctx, c.ID); err != nil || refunded || again != r {
		t.Fatalf("second refund = %+v, %v, %v", again, refunded, err)
	}

	// Declines and bad input, more of them than the breaker's volume threshold: a
	// decline is a charge and a 400 a business answer, so neither trips it.
	for i := range 10 {
		req := validRequest()
		req.OrderID = "declined-" + strconv.Itoa(i)
		req.Card.Number = TestCardInsufficientFunds
		d, created, err := svc.Charge(ctx, req)
		if err != nil || !created || d.Status != StatusDeclined || d.DeclineCode != DeclineInsufficientFunds {
			t.Fatalf("declined charge = %+v, %v, %v; want a declined charge and no error", d, created, err)
		}
		req.Card.Number = "4242424242424241"
		_, _, err = svc.Charge(ctx, req)
		if !errors.Is(err, ErrInvalidCardNumber) || errs.From(err).Kind != errs.Invalid {
			t.Fatalf("bad card: err = %v, want 400 invalid_card_number", err)
		}
	}
	if _, _, err := svc.Refund(ctx, newChargeID()); !errors.Is(err, ErrChargeNotFound) {
		t.Fatalf("refund of unknown charge: err = %v", err)
	}
	time.Sleep(100 * time.Millisecond) // hystrix counts outcomes asynchronously
	if breakerOpen(t, breaker) {
		t.Fatal("declines and 400s opened the breaker")
	}
	req := validRequest()
	req.OrderID = "after-declines"
	if _, _, err := svc.Charge(ctx, req); err != nil {
		t.Fatalf("charge after declines: %v", err)
	}
}

func TestClientRetriesProcessorFailures(t *testing.T) {
	overEach(t, testClientRetriesProcessorFailures)
}

func testClientRetriesProcessorFailures(t *testing.T, transport string) {
	ctx := context.Background()
	proc := &failingProcessor{next: simulated(t)}
	proc.failures.Store(2)
	counted := &countingProcessor{next: proc}
	svc, _ := newConsulClient(t, counted, transport)
	c, created, err := svc.Charge(ctx, validRequest())
	if err != nil || !created || c.Status != StatusSucceeded {
		t.Fatalf("charge = %+v, %v, %v; want success after two 503s retried", c, created, err)
	}
	if n := counted.calls.Load(); n != 3 {
		t.Fatalf("processor called %d times, want 3", n)
	}
	if list, err := svc.ListCharges(ctx, c.OrderID); err != nil || len(list) != 1 {
		t.Fatalf("charges of the order = %+v, %v; want one", list, err)
	}
}

func TestClientBreakerOpensOnProcessorOutage(t *testing.T) {
	overEach(t, testClientBreakerOpensOnProcessorOutage)
}

func testClientBreakerOpensOnProcessorOutage(t *testing.T, transport string) {
	ctx := context.Background()
	down, err := NewSimulatedProcessor(SimulatedConfig{FailureRate: 1, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	svc, breaker := newConsulClient(t, down, transport)
	for i := range 6 {
		req := validRequest()
		req.OrderID = "outage-" + strconv.Itoa(i)
		if _, _, err := svc.Charge(ctx, req); errs.From(err).Kind != errs.Unavailable {
			t.Fatalf("charge during outage: err = %v, want 503", err)
		}
	}
	deadline := time.Now().Add(2 * time.Second)
	for !breakerOpen(t, breaker) {
		if time.Now().After(deadline) {
			t.Fatal("the breaker stayed closed through a processor outage")
		}
		time.Sleep(20 * time.Millisecond)
	}
	_, _, err = svc.Charge(ctx, validRequest())
	if e := errs.From(err); e.Kind != errs.Unavailable || e.Code != "service_unavailable" {
		t.Fatalf("charge with the breaker open: err = %v, want service_unavailable", err)
	}
}
