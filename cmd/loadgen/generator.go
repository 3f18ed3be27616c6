package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"net/http/cookiejar"
	"os"
	"sync"
	"time"
)

type generator struct {
	base   string
	http   *http.Client
	mix    mix
	runID  string
	path   string     // with -url: the one path loaded, instead of the mix
	idle   chan *user // the users not acting now; an action takes one and gives it back
	skus   []string
	stats  *stats
	limit  uint64
	cancel context.CancelFunc
}

// user is one virtual user; it does one action at a time, as one person would, and
// keeps the cookies it is given, as a browser does (the gateway's admission tickets).
type user struct {
	email, token string
	client       *http.Client
}

// setUsers makes users the run's, each with a cookie jar of its own.
func (g *generator) setUsers(users []*user) {
	g.idle = make(chan *user, len(users))
	for _, u := range users {
		c := *g.http
		c.Jar, _ = cookiejar.New(nil) // only a bad option fails it
		u.client = &c
		g.idle <- u
	}
}

// prepare creates the run's products (with admin credentials) or reads the catalogue,
// then registers and logs in the users, a few at a time (a login hashes a password).
func (g *generator) prepare(ctx context.Context, c config) error {
	if c.adminEmail != "" && c.adminPass != "" && c.products > 0 {
		token, err := g.login(ctx, c.adminEmail, c.adminPass)
		if err != nil {
			return fmt.Errorf("admin login: %w", err)
		}
		for i := range c.products {
			sku := fmt.Sprintf("lg-%s-%02d", g.runID, i)
			body := map[string]any{"sku": sku, "name": "Load kit " + sku, "description": "created by loadgen",
				"price": map[string]any{"amount": 500 + 100*i, "currency": "EUR"}, "stock": c.stock}
			if status, b, err := g.call(ctx, http.MethodPost, "/v1/products", token, body, nil); err != nil || status != http.StatusCreated {
				return fmt.Errorf("creating product %s: status %d %s %v", sku, status, b, err)
			}
			g.skus = append(g.skus, sku)
		}
	} else {
		var list struct {
			Products []struct {
				SKU string `json:"sku"`
			} `json:"products"`
		}
		status, b, err := g.call(ctx, http.MethodGet, "/v1/products?limit=100", "", nil, nil)
		if err != nil || status != http.StatusOK {
			return fmt.Errorf("listing products: status %d %v", status, err)
		}
		if err := json.Unmarshal(b, &list); err != nil {
			return err
		}
		for _, p := range list.Products {
			g.skus = append(g.skus, p.SKU)
		}
		if len(g.skus) == 0 {
			return errors.New("the catalogue is empty and no admin credentials were given to create products")
		}
	}

	users := make([]*user, c.users)
	errc := make(chan error, c.users)
	sem := make(chan struct{}, 4)
	var wg sync.WaitGroup
	for i := range users {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			u := &user{email: fmt.Sprintf("lg-%s-%d@loadgen.test", g.runID, i)}
			password := randomHex(12)
			body := map[string]any{"email": u.email, "password": password, "name": fmt.Sprintf("Load user %d", i)}
			if status, b, err := g.call(ctx, http.MethodPost, "/v1/users", "", body, nil); err != nil || status != http.StatusCreated {
				errc <- fmt.Errorf("registering %s: status %d %s %v", u.email, status, b, err)
				return
			}
			token, err := g.login(ctx, u.email, password)
			if err != nil {
				errc <- fmt.Errorf("login of %s: %w", u.email, err)
				return
			}
			u.token = token
			users[i] = u
		}()
	}
	wg.Wait()
	close(errc)
	if err := <-errc; err != nil {
		return err
	}
	g.setUsers(users)
	return nil
}

func (g *generator) login(ctx context.Context, email, password string) (string, error) {
	status, b, err := g.call(ctx, http.MethodPost, "/v1/auth/login", "", map[string]string{"email": email, "password": password}, nil)
	if err != nil {
		return "", err
	}
	if status != http.StatusOK {
		return "", fmt.Errorf("status %d: %s", status, b)
	}
	var t struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.Unmarshal(b, &t); err != nil || t.AccessToken == "" {
		return "", fmt.Errorf("no access token in %s", b)
	}
	return t.AccessToken, nil
}

// call sends one request and returns its status and body (status 0: no answer).
func (g *generator) call(ctx context.Context, method, path, token string, body any, header map[string]string) (int, []byte, error) {
	return g.callWith(ctx, g.http, method, path, token, body, header)
}

// callWith is call through c: a user's client, which keeps that user's cookies.
func (g *generator) callWith(ctx context.Context, c *http.Client, method, path, token string, body any, header map[string]string) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, g.base+path, rd)
	if err != nil {
		return 0, nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	return resp.StatusCode, b, err
}

// do is one measured request of an action; it stops the run at the request limit.
// It reports whether the request was answered 2xx, for the action to go on.
func (g *generator) do(ctx context.Context, u *user, route, method, path string, body any, header map[string]string) bool {
	start := time.Now()
	status, _, err := g.callWith(ctx, u.client, method, path, u.token, body, header)
	if err != nil && ctx.Err() != nil {
		return false // the run ended while this request was in flight: not a failure of the target
	}
	g.stats.add(route, status, time.Since(start))
	if g.stats.count() >= g.limit {
		g.cancel()
	}
	return err == nil && status >= 200 && status < 300
}

// act runs one action of u. An action stops at its first request not answered 2xx,
// as a shopper does: one told to come back later (503, 429) does not open a product
// from the list that did not load, nor check out a cart whose item was refused.
func (g *generator) act(ctx context.Context, r *mrand.Rand, u *user, action string) {
	defer g.stats.action()
	if g.path != "" {
		g.do(ctx, u, "GET "+g.path, http.MethodGet, g.path, nil, nil)
		return
	}
	sku := g.skus[r.IntN(len(g.skus))]
	switch action {
	case actBrowse:
		if g.do(ctx, u, "GET /v1/products", http.MethodGet, "/v1/products?limit=20", nil, nil) {
			g.do(ctx, u, "GET /v1/products/{sku}", http.MethodGet, "/v1/products/"+sku, nil, nil)
		}
	case actProduct:
		g.do(ctx, u, "GET /v1/products/{sku}", http.MethodGet, "/v1/products/"+sku, nil, nil)
	case actCart:
		if !g.do(ctx, u, "PUT /v1/cart/items/{sku}", http.MethodPut, "/v1/cart/items/"+sku, map[string]int{"quantity": 1 + r.IntN(3)}, nil) {
			return
		}
		if g.do(ctx, u, "GET /v1/cart", http.MethodGet, "/v1/cart", nil, nil) && r.IntN(3) == 0 {
			g.do(ctx, u, "DELETE /v1/cart/items/{sku}", http.MethodDelete, "/v1/cart/items/"+sku, nil, nil)
		}
	case actCheckout:
		body := map[string]any{"items": []map[string]any{{"sku": sku, "quantity": 1}}, "payment": testCard()}
		g.do(ctx, u, "POST /v1/orders", http.MethodPost, "/v1/orders", body, map[string]string{"Idempotency-Key": "lg-" + randomHex(12)})
	case actBuyCart:
		if g.do(ctx, u, "PUT /v1/cart/items/{sku}", http.MethodPut, "/v1/cart/items/"+sku, map[string]int{"quantity": 1}, nil) {
			body := map[string]any{"payment": testCard()}
			g.do(ctx, u, "POST /v1/orders (cart)", http.MethodPost, "/v1/orders", body, map[string]string{"Idempotency-Key": "lg-" + randomHex(12)})
		}
	}
}

// testCard is the simulated processor's card that always succeeds.
func testCard() map[string]any {
	return map[string]any{"card_number": "4242424242424242", "exp_month": 12, "exp_year": time.Now().Year() + 3, "cvc": "123"}
}

// runConcurrency keeps n actions in flight: as soon as one is answered, the next
// starts, by the user that has been idle longest (so every account takes part).
func (g *generator) runConcurrency(ctx context.Context, n int) {
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := mrand.New(mrand.NewPCG(uint64(i), uint64(time.Now().UnixNano())))
			for ctx.Err() == nil {
				u := <-g.idle // n <= len(users): one is always idle
				g.act(ctx, r, u, g.mix.pick(r))
				g.idle <- u
			}
		}()
	}
	wg.Wait()
}

// runBurst has every user act once, all released at the same moment.
func (g *generator) runBurst(ctx context.Context) {
	users := len(g.idle)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range users {
		u := <-g.idle
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := mrand.New(mrand.NewPCG(uint64(i), uint64(time.Now().UnixNano())))
			action := g.mix.pick(r)
			<-start
			g.act(ctx, r, u, action)
			g.idle <- u
		}()
	}
	close(start)
	wg.Wait()
}

// runRate starts rate actions a second whatever the answers take (an open workload),
// at most inFlight at once; an action that finds them all busy is skipped and counted.
func (g *generator) runRate(ctx context.Context, rate float64, inFlight int) {
	slots := make(chan struct{}, inFlight)
	interval := time.Duration(float64(time.Second) / rate)
	var wg sync.WaitGroup
	r := mrand.New(mrand.NewPCG(1, uint64(time.Now().UnixNano())))
	next := time.Now()
	for ctx.Err() == nil {
		if d := time.Until(next); d > 0 {
			select {
			case <-ctx.Done():
			case <-time.After(d):
			}
			if ctx.Err() != nil {
				break
			}
		}
		next = next.Add(interval)
		select {
		case slots <- struct{}{}:
		default:
			g.stats.skip()
			continue
		}
		// A free slot means at most inFlight-1 users act (each gives its user back before
		// its slot), and inFlight <= len(users): an idle user is there without waiting.
		action, u, seed := g.mix.pick(r), <-g.idle, r.Uint64()
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-slots }()
			g.act(ctx, mrand.New(mrand.NewPCG(seed, 0)), u, action)
			g.idle <- u
		}()
	}
	wg.Wait()
}

func (g *generator) progressLoop(ctx context.Context, every time.Duration, w io.Writer, done chan<- struct{}) {
	defer close(done)
	tty := false
	if f, ok := w.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			tty = true
		}
	}
	start := time.Now()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			if tty {
				fmt.Fprintln(w)
			}
			return
		case <-t.C:
			n, errs, p50, p99 := g.stats.progress()
			line := fmt.Sprintf("%6.1fs  %8.1f req/s  errors %-6d p50 %7.2f ms  p99 %7.2f ms  total %d",
				time.Since(start).Seconds(), float64(n)/every.Seconds(), errs, ms(p50), ms(p99), g.stats.count())
			if tty {
				fmt.Fprintf(w, "\r%s", line)
			} else {
				fmt.Fprintln(w, line)
			}
		}
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
