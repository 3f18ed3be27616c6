package payment

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/openzipkin/zipkin-go"

	"github.com/kitshop/kitshop/pkg/logging"
	"github.com/kitshop/kitshop/pkg/observe"
	"github.com/kitshop/kitshop/pkg/testenv"
)

// newTestServer serves a memory-backed payment service, logging at debug level into
// the returned buffer.
func newTestServer(t *testing.T, proc Processor) (*httptest.Server, *testenv.SyncBuffer) {
	t.Helper()
	e, tracer, logs := newTestEndpoints(t, proc)
	srv := httptest.NewServer(MakeHTTPHandler(e, tracer))
	t.Cleanup(srv.Close)
	return srv, logs
}

// newTestEndpoints are the endpoints of a payment service with a memory store and
// proc, logging into the buffer returned, for a test server of either transport.
func newTestEndpoints(t *testing.T, proc Processor) (Endpoints, *zipkin.Tracer, *testenv.SyncBuffer) {
	t.Helper()
	logs := &testenv.SyncBuffer{}
	logger, err := logging.New(logs, "payment", "debug")
	if err != nil {
		t.Fatal(err)
	}
	tracer, rep, err := observe.NewTracer("payment", "127.0.0.1:8084", "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rep.Close() })
	obs := observe.Observer{Logger: logger, Metrics: observe.NewMetrics("payment"), Tracer: tracer}
	svc := NewService(NewMemoryStore(), proc, now)
	return MakeServerEndpoints(svc, obs), tracer, logs
}

func simulated(t *testing.T) Processor {
	t.Helper()
	p, err := NewSimulatedProcessor(SimulatedConfig{Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

const chargeBody = `{"order_id":"order-1","user_id":"user-1","amount":{"amount":1999,"currency":"EUR"},` +
	`"card":{"number":"4242424242424242","exp_month":12,"exp_year":2030,"cvc":"987"}}`

type answer struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

func (a answer) code() string {
	e, _ := a.body["error"].(map[string]any)
	code, _ := e["code"].(string)
	return code
}

func do(t *testing.T, method, url, contentType, body string) answer {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	a := answer{status: resp.StatusCode, header: resp.Header, raw: string(raw)}
	if err := json.Unmarshal(raw, &a.body); err != nil {
		t.Fatalf("%s %s: body %q is not a JSON object", method, url, raw)
	}
	return a
}

func TestHTTPCharge(t *testing.T) {
	srv, logs := newTestServer(t, simulated(t))
	url := srv.URL + "/internal/v1/charges"

	first := do(t, "POST", url, "application/json", chargeBody)
	if first.status != 201 || first.header.Get(ReplayedHeader) != "" {
		t.Fatalf("first charge: %d %s", first.status, first.raw)
	}
	want := map[string]any{
		"order_id": "order-1", "user_id": "user-1", "status": "succeeded",
		"amount": map[string]any{"amount": 1999.0, "currency": "EUR"},
		"card":   map[string]any{"brand": "visa", "last4": "4242"},
	}
	for k, v := range want {
		if got, _ := json.Marshal(first.body[k]); string(got) != mustJSON(t, v) {
			t.Fatalf("%s = %s, want %s", k, got, mustJSON(t, v))
		}
	}
	if _, ok := first.body["decline_code"]; ok {
		t.Fatalf("a succeeded charge has a decline_code: %s", first.raw)
	}

	again := do(t, "POST", url, "application/json", chargeBody)
	if again.status != 200 || again.raw != first.raw || again.header.Get(ReplayedHeader) != "true" {
		t.Fatalf("repeat: %d %q %s; want 200, the same body, replayed", again.status, again.header.Get(ReplayedHeader), again.raw)
	}

	declined := do(t, "POST", url, "application/json", strings.NewReplacer("order-1", "order-2", "4242424242424242", TestCardDeclined).Replace(chargeBody))
	if declined.status != 201 || declined.body["status"] != "declined" || declined.body["decline_code"] != "card_declined" {
		t.Fatalf("declined card: %d %s", declined.status, declined.raw)
	}

	list := do(t, "GET", url+"?order_id=order-1", "", "")
	charges, _ := list.body["charges"].([]any)
	if list.status != 200 || len(charges) != 1 {
		t.Fatalf("list: %d %s", list.status, list.raw)
	}
	id := first.body["id"].(string)
	if got := do(t, "GET", url+"/"+id, "", ""); got.status != 200 || got.raw != first.raw {
		t.Fatalf("get: %d %s", got.status, got.raw)
	}

	refund := do(t, "POST", url+"/"+id+"/refund", "", "")
	if refund.status != 200 || refund.body["status"] != "refunded" || refund.body["refunded_at"] == nil || refund.header.Get(ReplayedHeader) != "" {
		t.Fatalf("refund: %d %s", refund.status, refund.raw)
	}
	if again := do(t, "POST", url+"/"+id+"/refund", "", ""); again.status != 200 || again.raw != refund.raw || again.header.Get(ReplayedHeader) != "true" {
		t.Fatalf("second refund: %d %s", again.status, again.raw)
	}

	// Never the number or the CVC in a log line, even at debug level.
	assertNoCardData(t, logs.String(), "4242424242424242", "987")
}

// assertNoCardData fails if a JSON log line has a card field, or a value holding the
// card number or the CVC as a word of its own (timestamps, trace IDs and durations
// may hold the CVC's digits by chance).
func assertNoCardData(t *testing.T, logs, number, cvc string) {
	t.Helper()
	if logs == "" {
		t.Fatal("nothing was logged")
	}
	cvcWord := regexp.MustCompile(`(^|[^0-9A-Za-z.:])` + cvc + `($|[^0-9A-Za-z])`)
	for _, line := range strings.Split(strings.TrimSpace(logs), "\n") {
		var fields map[string]any
		if err := json.Unmarshal([]byte(line), &fields); err != nil {
			t.Fatalf("log line %q is not JSON", line)
		}
		for k, v := range fields {
			s := fmt.Sprint(v)
			switch {
			case k == "cvc" || k == "number" || k == "card":
				t.Fatalf("log line has a %q field: %s", k, line)
			case strings.Contains(s, number):
				t.Fatalf("log line shows the card number: %s", line)
			case k != "ts" && k != "trace_id" && k != "took" && cvcWord.MatchString(s):
				t.Fatalf("log line shows the CVC: %s", line)
			}
		}
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestHTTPErrors(t *testing.T) {
	srv, logs := newTestServer(t, simulated(t))
	url := srv.URL + "/internal/v1/charges"
	declined := do(t, "POST", url, "application/json", strings.NewReplacer("order-1", "order-d", "4242424242424242", TestCardDeclined).Replace(chargeBody))
	do(t, "POST", url, "application/json", chargeBody)

	tests := []struct {
		name, method, path, contentType, body string
		status                                int
		code                                  string
	}{
		{"malformed JSON", "POST", "", "application/json", `{"order_id":`, 400, "malformed_json"},
		{"empty body", "POST", "", "application/json", ``, 400, "malformed_json"},
		{"trailing data", "POST", "", "application/json", chargeBody + `{}`, 400, "malformed_json"},
		{"unknown field", "POST", "", "application/json", `{"order_id":"o","pan":"4242"}`, 400, "unknown_field"},
		{"wrong type", "POST", "", "application/json", `{"amount":{"amount":"ten"}}`, 400, "invalid_field"},
		{"not JSON content type", "POST", "", "text/plain", chargeBody, 400, "unsupported_content_type"},
		{"body over 1 MiB", "POST", "", "application/json", `{"order_id":"` + strings.Repeat("a", 1<<20) + `"}`, 413, "body_too_large"},
		{"negative amount", "POST", "", "application/json", strings.Replace(chargeBody, "1999", "-1", 1), 400, "invalid_amount"},
		{"unknown currency", "POST", "", "application/json", strings.Replace(chargeBody, "EUR", "XXX", 1), 400, "unsupported_currency"},
		{"bad card number", "POST", "", "application/json", strings.Replace(chargeBody, "4242424242424242", "4242424242424243", 1), 400, "invalid_card_number"},
		{"expired card", "POST", "", "application/json", strings.Replace(chargeBody, "2030", "2020", 1), 400, "card_expired"},
		{"bad CVC", "POST", "", "application/json", strings.Replace(chargeBody, `"987"`, `"98"`, 1), 400, "invalid_cvc"},
		{"mismatch", "POST", "", "application/json", strings.Replace(chargeBody, "1999", "2999", 1), 409, "idempotency_mismatch"},
		{"list without order ID", "GET", "", "", "", 400, "invalid_order_id"},
		{"unknown charge", "GET", "/ch_000000000000000000000000", "", "", 404, "charge_not_found"},
		{"refund of unknown charge", "POST", "/ch_000000000000000000000000/refund", "", "", 404, "charge_not_found"},
		{"refund of declined charge", "POST", "/" + declined.body["id"].(string) + "/refund", "", "", 409, "charge_not_refundable"},
		{"unknown route", "GET", "/x/y/z", "", "", 404, "not_found"},
		{"wrong method", "DELETE", "", "", "", 405, "method_not_allowed"},
		{"wrong method on refund", "GET", "/ch_000000000000000000000000/refund", "", "", 405, "method_not_allowed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := do(t, tt.method, url+tt.path, tt.contentType, tt.body)
			if a.status != tt.status || a.code() != tt.code {
				t.Fatalf("%d %s, want %d %s", a.status, a.raw, tt.status, tt.code)
			}
			if strings.Contains(a.raw, "4242424242424242") {
				t.Fatalf("answer shows the card number: %s", a.raw)
			}
		})
	}
	// Nothing written by the refused charges: order-1 still has its one charge.
	list := do(t, "GET", url+"?order_id=order-1", "", "")
	if charges, _ := list.body["charges"].([]any); len(charges) != 1 || charges[0].(map[string]any)["amount"].(map[string]any)["amount"] != 1999.0 {
		t.Fatalf("order-1 charges: %s", list.raw)
	}
	assertNoCardData(t, logs.String(), "4242424242424242", "987")
}

func TestHTTPProcessorFailureIs503(t *testing.T) {
	p, err := NewSimulatedProcessor(SimulatedConfig{FailureRate: 1, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	srv, _ := newTestServer(t, p)
	a := do(t, "POST", srv.URL+"/internal/v1/charges", "application/json", chargeBody)
	if a.status != 503 || a.code() != "processor_unavailable" || a.header.Get("Retry-After") == "" {
		t.Fatalf("%d %v %s, want 503 processor_unavailable with Retry-After", a.status, a.header, a.raw)
	}
	if list := do(t, "GET", srv.URL+"/internal/v1/charges?order_id=order-1", "", ""); list.raw != "{\"charges\":[]}\n" {
		t.Fatalf("a charge was stored: %s", list.raw)
	}
}
