package e2e

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/kitshop/kitshop/internal/stack"
	"github.com/kitshop/kitshop/pkg/testenv"
)

// TestInternalTransports runs a checkout, a decline and a cancel with the calls between
// services over each transport: the suite's stack (HTTP JSON, or what
// KITSHOP_INTERNAL_TRANSPORT says) and a stack of its own for the other (the variable set
// for every service). Each checkout's trace runs through every service it crosses, and
// the inventory and payment calls of it came in over the transport under test (their
// log lines say which).
func TestInternalTransports(t *testing.T) {
	suiteTransport, other := "http", "grpc"
	if getenv("KITSHOP_INTERNAL_TRANSPORT", "http") == "grpc" {
		suiteTransport, other = "grpc", "http"
	}
	own, err := start(func(o *stack.Options) { setInternalTransport(o, other) })
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		own.keepLogs = t.Failed()
		if err := own.stop(); err != nil {
			t.Errorf("stopping the %s stack: %v", other, err)
		}
	}()
	stacks := map[string]*suite{suiteTransport: env, other: own}
	for _, transport := range []string{"http", "grpc"} {
		t.Run(transport, func(t *testing.T) { checkoutDeclineCancel(t, stacks[transport], transport) })
	}
}

// setInternalTransport makes every service of a stack call the others over transport.
func setInternalTransport(o *stack.Options, transport string) {
	for _, svc := range []string{"user", "inventory", "payment", "order", "notification", "gateway"} {
		if o.Env[svc] == nil {
			o.Env[svc] = map[string]string{}
		}
		o.Env[svc]["KITSHOP_INTERNAL_TRANSPORT"] = transport
	}
}

func checkoutDeclineCancel(t *testing.T, s *suite, transport string) {
	ctx := context.Background()
	c, _ := s.shopper(t)
	sku := s.newProduct(t, 10, 700)
	available := func() int {
		t.Helper()
		var p struct{ Available int }
		if _, err := c.Call(ctx, "GET", "/v1/products/"+sku, nil, &p); err != nil {
			t.Fatal(err)
		}
		return p.Available
	}

	var o order
	answer, err := c.Send(ctx, "POST", "/v1/orders", map[string]any{"payment": card(goodCard), "items": []line{{sku, 2}}}, &o,
		"Idempotency-Key", transport+"-"+testenv.RandomHex(6))
	trace := answer.Header.Get("X-Trace-Id")
	if err != nil || answer.Status != http.StatusCreated || o.Status != "confirmed" || o.Total.Amount != 1400 || trace == "" {
		t.Fatalf("checkout = %d %+v (%v), trace %q; want 201 confirmed for 14.00 and a trace ID", answer.Status, o, err, trace)
	}
	if n := available(); n != 8 {
		t.Fatalf("available after checkout = %d, want 8", n)
	}

	if _, _, err := checkout(ctx, c, "declined-"+testenv.RandomHex(6), []line{{sku, 1}}, declinedCard); !stack.IsCode(err, "payment_declined") {
		t.Fatalf("declined card: %v; want payment_declined", err)
	}
	if n := available(); n != 8 {
		t.Fatalf("available after a decline = %d, want 8 (released)", n)
	}

	var cancelled order
	if _, err := c.Call(ctx, "POST", "/v1/orders/"+o.ID+"/cancel", nil, &cancelled); err != nil || cancelled.Status != "cancelled" {
		t.Fatalf("cancel = %+v, %v", cancelled, err)
	}
	if n := available(); n != 10 {
		t.Fatalf("available after cancel = %d, want 10", n)
	}
	var refunded int
	if err := s.dbs["payment"].QueryRow(`SELECT count(*) FROM charges WHERE order_id = $1 AND status = 'refunded'`, o.ID).Scan(&refunded); err != nil || refunded != 1 {
		t.Fatalf("refunded charges of the cancelled order = %d, %v; want 1", refunded, err)
	}

	// The checkout's trace: lines from every service it crossed, the calls to inventory
	// and payment among them over the transport under test, none over the other.
	want := []string{"gateway", "order", "inventory", "payment"}
	var seen map[string]int
	testenv.Eventually(t, 20*time.Second, "the checkout's lines from every service it crossed", func() bool {
		seen = map[string]int{}
		for _, l := range logLines(t, s.stack, stack.LogFilter{TraceID: trace}) {
			svc := strings.TrimRight(l.Instance, "-0123456789")
			if (svc == "inventory" || svc == "payment") && l.Msg == "call" {
				if got := l.Fields["transport"]; got != transport {
					t.Fatalf("%s answered %v over %v, want %s", l.Instance, l.Fields["endpoint"], got, transport)
				}
				seen[svc]++
			} else if svc != "inventory" && svc != "payment" {
				seen[svc]++
			}
		}
		for _, svc := range want {
			if seen[svc] == 0 {
				return false
			}
		}
		return true
	})
	t.Logf("%s: lines of the checkout's trace %s per service: %v", transport, trace, seen)

	// The services fetched the user service's keys over the same transport.
	fetches := map[any]int{}
	for _, l := range logLines(t, s.stack, stack.LogFilter{Service: "user"}) {
		if l.Msg == "call" && l.Fields["endpoint"] == "jwks" {
			fetches[l.Fields["transport"]]++
		}
	}
	if fetches[transport] == 0 || len(fetches) != 1 {
		t.Fatalf("the user service's key fetches by transport: %v; want all over %s", fetches, transport)
	}
}
