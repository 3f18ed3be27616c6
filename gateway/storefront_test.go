package gateway

import (
	"context"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	kithttp "github.com/go-kit/kit/transport/http"
	"github.com/go-kit/log"

	"github.com/kitshop/kitshop/inventory"
	"github.com/kitshop/kitshop/notification"
	"github.com/kitshop/kitshop/order"
	"github.com/kitshop/kitshop/payment"
	"github.com/kitshop/kitshop/pkg/auth"
	"github.com/kitshop/kitshop/pkg/client"
	"github.com/kitshop/kitshop/pkg/observe"
	"github.com/kitshop/kitshop/pkg/testenv"
	"github.com/kitshop/kitshop/user"
)

// shop is every kitshop service running in-process on memory stores, each behind its
// real HTTP transport, and the gateway in front of them.
type shop struct {
	gateway *httptest.Server
	orders  order.Store
	emails  notification.Service
}

func startShop(t *testing.T) *shop {
	t.Helper()
	nop := log.NewNopLogger()
	obs := func(service string) observe.Observer {
		return observe.Observer{Logger: nop, Metrics: observe.NewMetrics(service)}
	}
	keys, err := user.OpenKeyring(filepath.Join(t.TempDir(), "keys.json"), auth.DefaultIssuer, auth.DefaultAudience, time.Hour, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	verifier := auth.NewVerifier(keys, auth.DefaultIssuer, auth.DefaultAudience, time.Hour)
	// Cheap hashing: the page is under test, not the hash's cost, which under -race on a
	// busy machine can outlast the gateway's one-second attempt budget.
	passwords, err := user.NewPasswords(user.Argon2Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}, 2)
	if err != nil {
		t.Fatal(err)
	}
	users := user.NewService(user.NewMemoryStore(), user.Options{
		Passwords: passwords, Keys: keys, Logger: nop, Now: time.Now,
		EmailThrottle: user.NewThrottle(10, time.Minute, time.Now), AddrThrottle: user.NewThrottle(10, time.Minute, time.Now),
	})
	userSrv := httptest.NewServer(user.MakeHTTPHandler(user.MakeServerEndpoints(users, obs("user"), verifier), nil, nil))
	t.Cleanup(userSrv.Close)

	inv := inventory.NewService(inventory.NewMemoryStore(), "EUR", 15*time.Minute, time.Now)
	for _, p := range []inventory.Product{
		{SKU: testSKU, Name: "Starter kit", Description: "everything to begin", Price: inventory.Money{Amount: 1999, Currency: "EUR"}, Stock: 10},
		{SKU: "kit-002", Name: "Spare parts", Description: "for later", Price: inventory.Money{Amount: 499, Currency: "EUR"}, Stock: 5},
	} {
		if _, err := inv.CreateProduct(context.Background(), p); err != nil {
			t.Fatal(err)
		}
	}
	invSrv := httptest.NewServer(inventory.MakeHTTPHandler(inventory.MakeServerEndpoints(inv, obs("inventory"), verifier), nil))
	t.Cleanup(invSrv.Close)

	proc, err := payment.NewSimulatedProcessor(payment.SimulatedConfig{})
	if err != nil {
		t.Fatal(err)
	}
	paySrv := httptest.NewServer(payment.MakeHTTPHandler(payment.MakeServerEndpoints(payment.NewService(payment.NewMemoryStore(), proc, time.Now), obs("payment")), nil))
	t.Cleanup(paySrv.Close)

	copts := client.Options{
		Caller: testenv.Name("order"), Timeout: 5 * time.Second, AttemptTimeout: 2 * time.Second, Retries: 2,
		Before: []kithttp.RequestFunc{auth.ContextToHTTP()},
	}.Defaults()
	invC := inventory.NewHTTPClient(fixedInstancer{strings.TrimPrefix(invSrv.URL, "http://")}, copts)
	payC := payment.NewHTTPClient(fixedInstancer{strings.TrimPrefix(paySrv.URL, "http://")}, copts)
	orders := order.NewMemoryStore()
	oc := order.Config{Currency: "EUR", Now: time.Now, Logger: nop}
	saga := order.NewSaga(orders, invC, payC, oc)
	t.Cleanup(saga.Close)
	orderSrv := httptest.NewServer(order.MakeHTTPHandler(order.MakeServerEndpoints(order.NewService(orders, invC, saga, oc), obs("order"), verifier), nil))
	t.Cleanup(orderSrv.Close)

	emails := notification.NewService(notification.NewMemoryStore(), notification.RecordOnly{}, time.Now)
	notifSrv := httptest.NewServer(notification.MakeHTTPHandler(notification.MakeServerEndpoints(emails, obs("notification"), verifier), nil))
	t.Cleanup(notifSrv.Close)

	addr := func(s *httptest.Server) []string { return []string{strings.TrimPrefix(s.URL, "http://")} }
	o := withUpstreams(testOptions(nil), map[string][]string{
		UserService: addr(userSrv), InventoryService: addr(invSrv), OrderService: addr(orderSrv), NotificationService: addr(notifSrv),
	})
	// The gateway checks tokens with the keys the user service publishes.
	userKeys := auth.NewJWKSSource(auth.NewUserJWKSFetcher(fixedInstancer(addr(userSrv)), VerifierClientOptions(o)), auth.JWKSConfig{})
	t.Cleanup(func() { _ = userKeys.Close() })
	o.Verifier = auth.NewVerifier(userKeys, auth.DefaultIssuer, auth.DefaultAudience, time.Hour)
	return &shop{gateway: startGateway(t, o), orders: orders, emails: emails}
}

// deliverEvents hands an order's events to the notification service, standing in for
// the outbox relay and RabbitMQ, which memory stores do not have.
func (s *shop) deliverEvents(t *testing.T, orderID string) {
	t.Helper()
	events, err := s.orders.Events(context.Background(), orderID)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range events {
		if _, err := s.emails.HandleEvent(context.Background(), e); err != nil {
			t.Fatalf("event %s: %v", e.Type, err)
		}
	}
}

// TestStorefront clicks through the storefront in headless Chromium: browse, sign up,
// add to cart, check out with the test card, see the order and its email, cancel.
func TestStorefront(t *testing.T) {
	b := startBrowser(t)
	s := startShop(t)
	// Anything the Content-Security-Policy blocks is recorded, and must never happen.
	b.recordCSPViolations()

	b.navigate(s.gateway.URL + "/")
	b.waitFor("the catalogue", `document.querySelectorAll("#product-list li").length === 2`)
	b.waitFor("prices", `document.querySelector('#product-list li[data-sku="kit-001"] .price').textContent.includes("19.99")`)

	b.do(`document.querySelector('button.add[data-sku="kit-001"]').click()`)
	b.waitFor("a prompt to sign in", `!document.querySelector("#view-account").hidden`)

	b.do(`
		document.querySelector("#signup-name").value = "Ada";
		document.querySelector("#signup-email").value = "ada@example.com";
		document.querySelector("#signup-password").value = "correct horse battery";
		document.querySelector("#signup-form").requestSubmit()`)
	b.waitFor("signed in", `document.querySelector("#whoami").textContent.includes("ada@example.com")`)
	b.waitFor("back on the catalogue", `!document.querySelector("#view-products").hidden && document.querySelectorAll("#product-list li").length === 2`)

	b.do(`document.querySelector('#product-list li[data-sku="kit-001"] input.qty').value = "2"`)
	b.do(`document.querySelector('button.add[data-sku="kit-001"]').click()`)
	b.waitFor("added to the cart", `document.querySelector("#flash").textContent.includes("Added 2")`)

	b.do(`document.querySelector('a[data-view="cart"]').click()`)
	b.waitFor("the cart line", `document.querySelector('#cart-items tr[data-sku="kit-001"]') !== null`)
	b.waitFor("the cart total", `document.querySelector("#cart-total").textContent.includes("39.98")`)

	b.do(`document.querySelector("#checkout-form").requestSubmit()`)
	b.waitFor("a confirmed order", `document.querySelector('#orders-list li[data-order] .status').textContent === "confirmed"`)
	id, err := b.eval(`document.querySelector("#orders-list li[data-order]").dataset.order`)
	if err != nil {
		t.Fatal(err)
	}
	orderID, _ := id.(string)

	s.deliverEvents(t, orderID)
	b.do(`document.querySelector('a[data-view="emails"]').click()`)
	b.waitFor("the confirmation email", `document.querySelector("#emails-list li[data-notification]") !== null`)

	b.do(`document.querySelector('a[data-view="orders"]').click()`)
	b.waitFor("the cancel button", `document.querySelector("#orders-list button.cancel") !== null`)
	b.do(`document.querySelector("#orders-list button.cancel").click()`)
	b.waitFor("a cancelled order", `document.querySelector('#orders-list li[data-order] .status').textContent === "cancelled"`)

	s.deliverEvents(t, orderID)
	b.do(`document.querySelector('a[data-view="emails"]').click()`)
	b.waitFor("two emails", `document.querySelectorAll("#emails-list li[data-notification]").length === 2`)

	b.do(`document.querySelector('a[data-view="products"]').click()`)
	b.waitFor("stock back after the cancel", `document.querySelector('#product-list li[data-sku="kit-001"]').textContent.includes("10 available")`)

	b.checkNoCSPViolations()
}

// TestStorefrontHeaders: the storefront's files come with a Content-Security-Policy
// that allows nothing but its own files and refuses framing, no sniffing and a
// Referrer-Policy.
func TestStorefrontHeaders(t *testing.T) {
	gw := startGateway(t, withUpstreams(testOptions(newTestKeys(t).verifier), nil))
	for _, path := range []string{"/", "/static/app.js", "/static/style.css"} {
		t.Run(path, func(t *testing.T) {
			resp, _ := call(t, "GET", gw.URL+path, nil, nil)
			if resp.StatusCode != 200 {
				t.Fatalf("status %d", resp.StatusCode)
			}
			for header, want := range map[string]string{
				"Content-Security-Policy": "default-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
				"X-Content-Type-Options":  "nosniff",
				"X-Frame-Options":         "DENY",
				"Referrer-Policy":         "strict-origin-when-cross-origin",
			} {
				if got := resp.Header.Get(header); got != want {
					t.Errorf("%s: %q, want %q", header, got, want)
				}
			}
		})
	}
}
