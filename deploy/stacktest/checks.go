package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	consul "github.com/hashicorp/consul/api"
)

// shop is a running kitshop, reached through its published ports only.
type shop struct {
	gateway    *api // over HTTPS, trusting the demo CA only
	plain      *api // the gateway's port over plain HTTP, redirects not followed
	consul     *consul.Client
	consulHTTP *api
	prometheus *api // nil: not checked
	traces     *api // Jaeger's query API; nil: not checked
	logs       *api // the log store's (VictoriaLogs') API; nil: not checked
	logf       func(format string, args ...any)
}

// services and the port each listens on in its container.
var services = []string{"user", "inventory", "order", "payment", "notification", "gateway"}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func payment(card string) map[string]any {
	return map[string]any{"card_number": card, "exp_month": 12, "exp_year": time.Now().Year() + 3, "cvc": "123"}
}

// shopper signs up and logs in, and returns a client of the gateway with its token.
func (s *shop) shopper(ctx context.Context) (*api, string, error) {
	email := "stacktest-" + randomHex(4) + "@kitshop.local"
	if _, err := s.gateway.want(ctx, http.StatusCreated, "POST", "/v1/users",
		map[string]string{"email": email, "password": "correct horse battery", "name": "Stack Test"}, nil); err != nil {
		return nil, "", err
	}
	c, err := s.login(ctx, email, "correct horse battery")
	return c, email, err
}

func (s *shop) login(ctx context.Context, email, password string) (*api, error) {
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if _, err := s.gateway.want(ctx, http.StatusOK, "POST", "/v1/auth/login", map[string]string{"email": email, "password": password}, &tok); err != nil {
		return nil, err
	}
	c := *s.gateway
	c.token = tok.AccessToken
	return &c, nil
}

type order struct {
	ID     string `json:"id"`
	Status string `json:"status"`
	Total  struct {
		Amount int64 `json:"amount"`
	} `json:"total"`
}

// storyResult is what the shopping story leaves for later checks.
type storyResult struct {
	orderID, traceID string
}

// story walks a shopper through sign-up, login, cart, a checkout with the card that
// works, the confirmation email, and a checkout with a declined card.
func (s *shop) story(ctx context.Context) (storyResult, error) {
	c, email, err := s.shopper(ctx)
	if err != nil {
		return storyResult{}, err
	}
	s.logf("signed up and logged in as %s", email)
	if _, err := c.want(ctx, http.StatusOK, "PUT", "/v1/cart/items/KIT-MUG-01", map[string]int{"quantity": 2}, nil); err != nil {
		return storyResult{}, err
	}
	// The gateway starts the trace (a client's B3 headers are dropped at the edge) and
	// names it in X-Trace-Id.
	var o order
	r, err := c.want(ctx, http.StatusCreated, "POST", "/v1/orders", map[string]any{"payment": payment("4242424242424242")}, &o,
		"Idempotency-Key", "stacktest-"+randomHex(8))
	if err != nil {
		return storyResult{}, err
	}
	if o.Status != "confirmed" || o.Total.Amount != 2*1299 {
		return storyResult{}, fmt.Errorf("checkout: order %s is %s with total %d, want confirmed with 2598", o.ID, o.Status, o.Total.Amount)
	}
	traceID := r.header.Get("X-Trace-Id")
	if traceID == "" {
		return storyResult{}, errors.New("checkout: the answer has no X-Trace-Id")
	}
	res := storyResult{orderID: o.ID, traceID: traceID}
	s.logf("checkout with 4242…: order %s confirmed, EUR 25.98, trace %s", o.ID, res.traceID)

	err = eventually(ctx, 30*time.Second, 500*time.Millisecond, func() error {
		var list struct {
			Notifications []struct {
				OrderID string `json:"order_id"`
				Type    string `json:"type"`
				To      string `json:"to"`
				Subject string `json:"subject"`
			} `json:"notifications"`
		}
		if _, err := c.want(ctx, http.StatusOK, "GET", "/v1/notifications", nil, &list); err != nil {
			return err
		}
		for _, n := range list.Notifications {
			if n.OrderID == o.ID && n.Type == "order_confirmed" && n.To == email {
				s.logf("the email arrived: %q", n.Subject)
				return nil
			}
		}
		return fmt.Errorf("no order_confirmed email for %s among %d", o.ID, len(list.Notifications))
	})
	if err != nil {
		return res, err
	}

	if _, err := c.want(ctx, http.StatusOK, "PUT", "/v1/cart/items/KIT-STK-04", map[string]int{"quantity": 1}, nil); err != nil {
		return res, err
	}
	r, err = c.want(ctx, http.StatusUnprocessableEntity, "POST", "/v1/orders", map[string]any{"payment": payment("4000000000000002")}, nil,
		"Idempotency-Key", "stacktest-"+randomHex(8))
	if err != nil {
		return res, err
	}
	if !strings.Contains(string(r.body), "payment_declined") {
		return res, fmt.Errorf("declined card: %s, want payment_declined", r.body)
	}
	s.logf("checkout with 4000 0000 0000 0002: 422 payment_declined")
	return res, nil
}

// tokensEverywhere logs in several times (the gateway spreads the logins over every user
// instance) and uses each token: every instance signs with the shared keyring.
func (s *shop) tokensEverywhere(ctx context.Context, email, password string, n int) error {
	for i := range n {
		c, err := s.login(ctx, email, password)
		if err != nil {
			return fmt.Errorf("login %d: %w", i+1, err)
		}
		if _, err := c.want(ctx, http.StatusOK, "GET", "/v1/users/me", nil, nil); err != nil {
			return fmt.Errorf("the token of login %d: %w", i+1, err)
		}
	}
	s.logf("%d logins, each token accepted: the user instances share their signing keys", n)
	return nil
}

// https checks the gateway's two faces to a client on another host (a published port
// is reached through Docker's proxy, from the network's gateway address): HTTPS with
// the demo CA's certificate and HSTS; plain HTTP redirected for a GET and refused for a
// request with a body (a password would cross the network in clear).
func (s *shop) https(ctx context.Context) error {
	r, err := s.gateway.want(ctx, http.StatusOK, "GET", "/v1/products?limit=1", nil, nil)
	if err != nil {
		return fmt.Errorf("HTTPS: %w", err)
	}
	if r.header.Get("Strict-Transport-Security") == "" {
		return errors.New("HTTPS: no Strict-Transport-Security header")
	}
	r, err = s.plain.want(ctx, http.StatusPermanentRedirect, "GET", "/v1/products?limit=1", nil, nil)
	if err != nil {
		return fmt.Errorf("plain HTTP: %w", err)
	}
	if loc := r.header.Get("Location"); !strings.HasPrefix(loc, "https://") {
		return fmt.Errorf("plain HTTP GET: redirected to %q, want an https:// URL", loc)
	}
	var refused struct {
		Error struct{ Code string }
	}
	if _, err := s.plain.want(ctx, http.StatusForbidden, "POST", "/v1/auth/login", map[string]string{"email": "x@example.com", "password": "in clear"}, &refused); err != nil {
		return fmt.Errorf("plain HTTP: %w", err)
	}
	if refused.Error.Code != "https_required" {
		return fmt.Errorf("plain HTTP login: error %q, want https_required", refused.Error.Code)
	}
	s.logf("HTTPS at the gateway: certificate of the demo CA verified, HSTS sent; plain HTTP from another host: GET redirected, a login refused (https_required)")
	return nil
}

// instances waits until each service has the wanted number of passing instances in
// Consul, read without a token, each at an address of its own, and checks how each is
// is registered (mtls between services; the gateway by its admin listener).
func (s *shop) instances(ctx context.Context, want map[string]int) error {
	names := make([]string, 0, len(want))
	for name := range want {
		names = append(names, name)
	}
	sort.Strings(names)
	var summary []string
	for _, name := range names {
		err := eventually(ctx, 90*time.Second, time.Second, func() error {
			entries, _, err := s.consul.Health().Service(name, "", true, (&consul.QueryOptions{}).WithContext(ctx))
			if err != nil {
				return err
			}
			if len(entries) != want[name] {
				return fmt.Errorf("%s: %d passing instances, want %d", name, len(entries), want[name])
			}
			addrs := map[string]bool{}
			// The gateway registers its admin listener (plain HTTP, unpublished: /health
			// for Consul, /metrics for Prometheus) and names its public port beside it.
			transport := "mtls"
			if name == "gateway" {
				transport = "http"
			}
			for _, e := range entries {
				addrs[e.Service.Address] = true
				if got := e.Service.Meta["transport"]; got != transport {
					return fmt.Errorf("%s at %s: transport %q, want %q", name, e.Service.Address, got, transport)
				}
				if name == "gateway" && e.Service.Meta["public_port"] != "8080" {
					return fmt.Errorf("gateway at %s: public_port %q, want 8080", e.Service.Address, e.Service.Meta["public_port"])
				}
			}
			if len(addrs) != len(entries) {
				return fmt.Errorf("%s: %d instances share %d addresses", name, len(entries), len(addrs))
			}
			return nil
		})
		if err != nil {
			return err
		}
		summary = append(summary, fmt.Sprintf("%s %d", name, want[name]))
	}
	s.logf("passing in Consul, each at its own address: %s", strings.Join(summary, ", "))
	return nil
}

// registered is how many instances of service Consul knows, passing or not.
func (s *shop) registered(ctx context.Context, service string) (int, error) {
	entries, _, err := s.consul.Health().Service(service, "", false, (&consul.QueryOptions{}).WithContext(ctx))
	return len(entries), err
}

// anonymousWrites checks that Consul refuses to register a service, or to hand out a
// service's certificate, to a request without a token.
func (s *shop) anonymousWrites(ctx context.Context) error {
	r, err := s.consulHTTP.call(ctx, "PUT", "/v1/agent/service/register",
		map[string]any{"Name": "user", "ID": "stacktest-fake-user", "Address": "192.0.2.1", "Port": 8081})
	if err != nil {
		return err
	}
	if r.status != http.StatusForbidden {
		return fmt.Errorf("an anonymous PUT /v1/agent/service/register answered %d %s, want 403", r.status, r.body)
	}
	r, err = s.consulHTTP.call(ctx, "GET", "/v1/agent/connect/ca/leaf/user", nil)
	if err != nil {
		return err
	}
	if r.status != http.StatusForbidden {
		return fmt.Errorf("an anonymous GET /v1/agent/connect/ca/leaf/user answered %d, want 403", r.status)
	}
	s.logf("Consul without a token: register refused (403), leaf certificate refused (403)")
	return nil
}

// trace waits until the collector holds the trace with spans of every named service.
func (s *shop) trace(ctx context.Context, traceID string, want ...string) error {
	var got []string
	err := eventually(ctx, 45*time.Second, time.Second, func() error {
		var t struct {
			Data []struct {
				Spans     []any `json:"spans"`
				Processes map[string]struct {
					ServiceName string `json:"serviceName"`
				} `json:"processes"`
			} `json:"data"`
		}
		if _, err := s.traces.want(ctx, http.StatusOK, "GET", "/api/traces/"+traceID, nil, &t); err != nil {
			return err
		}
		got = got[:0]
		spans := 0
		for _, d := range t.Data {
			spans += len(d.Spans)
			for _, p := range d.Processes {
				if !slices.Contains(got, p.ServiceName) {
					got = append(got, p.ServiceName)
				}
			}
		}
		for _, w := range want {
			if !slices.Contains(got, w) {
				return fmt.Errorf("trace %s has spans of %v, not of %s", traceID, got, w)
			}
		}
		s.logf("the checkout's trace %s: %d spans, of %s", traceID, spans, strings.Join(sorted(got), ", "))
		return nil
	})
	return err
}

func sorted(s []string) []string {
	out := slices.Clone(s)
	sort.Strings(out)
	return out
}

// promTarget is an active target of Prometheus.
type promTarget struct {
	Labels     map[string]string `json:"labels"`
	Health     string            `json:"health"`
	LastScrape time.Time         `json:"lastScrape"`
}

func (s *shop) promTargets(ctx context.Context) ([]promTarget, error) {
	var t struct {
		Data struct {
			ActiveTargets []promTarget `json:"activeTargets"`
		} `json:"data"`
	}
	_, err := s.prometheus.want(ctx, http.StatusOK, "GET", "/api/v1/targets?state=active", nil, &t)
	return t.Data.ActiveTargets, err
}

// targetsUp waits until every kitshop instance registered in Consul is a target of
// Prometheus that is up.
func (s *shop) targetsUp(ctx context.Context) error {
	var total int
	err := eventually(ctx, 90*time.Second, 2*time.Second, func() error {
		targets, err := s.promTargets(ctx)
		if err != nil {
			return err
		}
		up := map[string]bool{}
		for _, t := range targets {
			if t.Health == "up" {
				up[t.Labels["consul_id"]] = true
			}
		}
		total = 0
		for _, name := range services {
			entries, _, err := s.consul.Health().Service(name, "", false, (&consul.QueryOptions{}).WithContext(ctx))
			if err != nil {
				return err
			}
			for _, e := range entries {
				total++
				if !up[e.Service.ID] {
					return fmt.Errorf("%s is not an up target of Prometheus", e.Service.ID)
				}
			}
		}
		return nil
	})
	if err == nil {
		s.logf("Prometheus scrapes all %d kitshop instances in Consul, every one up", total)
	}
	return err
}

// placeOrders is Prometheus's count of place_order calls by order instance (consul_id).
func (s *shop) placeOrders(ctx context.Context) (map[string]float64, error) {
	q := url.QueryEscape(`sum by (consul_id) (kitshop_endpoint_requests_total{service="order",endpoint="place_order"})`)
	var res struct {
		Data struct {
			Result []struct {
				Metric map[string]string `json:"metric"`
				Value  [2]any            `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if _, err := s.prometheus.want(ctx, http.StatusOK, "GET", "/api/v1/query?query="+q, nil, &res); err != nil {
		return nil, err
	}
	counts := map[string]float64{}
	for _, r := range res.Data.Result {
		var v float64
		if str, ok := r.Value[1].(string); ok {
			_, _ = fmt.Sscan(str, &v)
		}
		counts[r.Metric["consul_id"]] = v
	}
	return counts, nil
}

// scrapedSince waits until Prometheus has scraped each of the order instances ids, up,
// after t, so that its counts include every call made before t.
func (s *shop) scrapedSince(ctx context.Context, ids []string, t time.Time) error {
	return eventually(ctx, 90*time.Second, 2*time.Second, func() error {
		targets, err := s.promTargets(ctx)
		if err != nil {
			return err
		}
		for _, id := range ids {
			if !slices.ContainsFunc(targets, func(pt promTarget) bool {
				return pt.Labels["consul_id"] == id && pt.Health == "up" && pt.LastScrape.After(t)
			}) {
				return fmt.Errorf("order instance %s has not been scraped since %s", id, t.Format(time.TimeOnly))
			}
		}
		return nil
	})
}

// checkoutsReachEach places n checkouts and wants Prometheus's count of them to grow
// by exactly n, each of the order instances in Consul having taken at least one.
func (s *shop) checkoutsReachEach(ctx context.Context, n int) error {
	entries, _, err := s.consul.Health().Service("order", "", true, (&consul.QueryOptions{}).WithContext(ctx))
	if err != nil {
		return err
	}
	ids := make([]string, 0, len(entries))
	for _, e := range entries {
		ids = append(ids, e.Service.ID)
	}
	c, _, err := s.shopper(ctx)
	if err != nil {
		return err
	}
	if err := s.scrapedSince(ctx, ids, time.Now()); err != nil {
		return err
	}
	before, err := s.placeOrders(ctx)
	if err != nil {
		return err
	}
	for i := range n {
		body := map[string]any{"items": []map[string]any{{"sku": "KIT-STK-04", "quantity": 1}}, "payment": payment("4242424242424242")}
		if _, err := c.want(ctx, http.StatusCreated, "POST", "/v1/orders", body, nil, "Idempotency-Key", "stacktest-"+randomHex(8)); err != nil {
			return fmt.Errorf("checkout %d: %w", i+1, err)
		}
	}
	if err := s.scrapedSince(ctx, ids, time.Now()); err != nil {
		return err
	}
	after, err := s.placeOrders(ctx)
	if err != nil {
		return err
	}
	var deltas []string
	var sum float64
	for _, id := range ids {
		d := after[id] - before[id]
		sum += d
		deltas = append(deltas, fmt.Sprintf("%s %.0f", id, d))
	}
	if sum != float64(n) || slices.ContainsFunc(ids, func(id string) bool { return after[id]-before[id] < 1 }) {
		return fmt.Errorf("after %d checkouts Prometheus counts %s: want %d in all, at least one on each order instance", n, strings.Join(deltas, ", "), n)
	}
	s.logf("%d checkouts spread over the %d order instances: %s", n, len(ids), strings.Join(deltas, ", "))
	return nil
}

// readLoop reads the catalogue rate times a second for d, calls during once, after a
// quarter of d, and returns how many reads there were and which failed.
func (s *shop) readLoop(ctx context.Context, d time.Duration, rate int, during func() error) (reads int, failures []string, err error) {
	tick := time.NewTicker(time.Second / time.Duration(rate))
	defer tick.Stop()
	end := time.Now().Add(d)
	var (
		mu   sync.Mutex
		wg   sync.WaitGroup
		done = make(chan error, 1)
	)
	go func() {
		time.Sleep(d / 4)
		done <- during()
	}()
	for time.Now().Before(end) {
		<-tick.C
		reads++
		wg.Go(func() {
			r, err := s.gateway.call(ctx, "GET", "/v1/products?limit=5", nil)
			if err == nil && r.status != http.StatusOK {
				err = fmt.Errorf("status %d: %.120s", r.status, r.body)
			}
			if err != nil {
				mu.Lock()
				failures = append(failures, err.Error())
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return reads, failures, <-done
}
