// Command loadgen drives realistic traffic through the kitshop gateway: virtual users
// with accounts of their own browse the catalogue, edit their carts and check out, at a
// fixed concurrency or a fixed rate, for a bounded time and number of requests. It
// prints a progress line every second and a final report per route (count, errors by
// status, p50/p90/p99/max) as text and, with -json, as JSON.
//
//	loadgen -stack .kitshop/stack.json -concurrency 32 -duration 20s -mix checkout=1
//
// With -url it loads one URL with plain GETs instead (no accounts, no products): the
// same fixed rate against the gateway, an instance and another proxy shows the
// latency each adds without queueing.
//
//	loadgen -url http://127.0.0.1:8080/v1/products/kit-001 -rate 1000 -duration 10s
//
// With -burst every user acts once, all at the same moment: a crowd arriving on a stack
// that has just started. With -curve it finds the saturation point (a closed loop of
// -concurrency users), then offers fixed rates of the given multiples of it: goodput
// and the latency of admitted work past the point where the target is full.
//
//	loadgen -stack .kitshop/stack.json -curve 0.5,1,2,4 -concurrency 64 -users 800
//
//	loadgen -stack .kitshop/stack.json -burst -concurrency 60 -mix buycart=1
//
// Only loopback targets are accepted unless -allow-remote is given.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}

// Bounds no flag can lift: a forgotten load generator stops by itself.
const (
	maxDuration = time.Hour
	maxRequests = 100_000_000
)

type config struct {
	target, stackFile     string
	url                   string
	allowRemote           bool
	adminEmail, adminPass string
	concurrency, users    int
	rate                  float64
	burst                 bool
	curve                 []float64
	settle                time.Duration
	duration              time.Duration
	requests              uint64
	mixSpec               string
	products, stock       int
	jsonOut               string
	progress              time.Duration
	timeout               time.Duration
}

func parseFlags(args []string, stderr io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.target, "target", "", "the gateway's URL (default: gateway_url of -stack, else http://127.0.0.1:8080)")
	fs.StringVar(&c.url, "url", "", "GET this one URL instead of the shop's mix (no accounts or products are made)")
	fs.StringVar(&c.stackFile, "stack", "", "stack.json of a kitshop stack: gateway URL and admin credentials")
	fs.BoolVar(&c.allowRemote, "allow-remote", false, "allow a target that is not a loopback address")
	fs.StringVar(&c.adminEmail, "admin-email", "", "admin account that creates the products the run buys (default: from -stack)")
	fs.StringVar(&c.adminPass, "admin-password", "", "its password (default: from -stack; env KITSHOP_ADMIN_PASSWORD)")
	fs.IntVar(&c.concurrency, "concurrency", 8, "virtual users acting at once (fixed concurrency; with -rate, the most actions in flight)")
	fs.IntVar(&c.users, "users", 0, "accounts created for the run, at least -concurrency; each acts one thing at a time (default: -concurrency)")
	fs.Float64Var(&c.rate, "rate", 0, "actions started per second (fixed rate); 0: fixed concurrency")
	fs.BoolVar(&c.burst, "burst", false, "every user acts once, all at the same moment (after the accounts are made), then the run ends")
	fs.DurationVar(&c.settle, "settle", 3*time.Second, "with -curve, the pause before each step, for the work the last one left queued (sagas, the outbox) to drain")
	curve := fs.String("curve", "", "multiples, e.g. 0.5,1,2,4: measure the saturation point (-concurrency users for -duration), then load at each multiple of its actions/s for -duration, with up to -users in flight")
	fs.DurationVar(&c.duration, "duration", 10*time.Second, "how long to load (at most 1h)")
	fs.Uint64Var(&c.requests, "requests", 1_000_000, "stop after this many requests (at most 1e8; with -curve, per step)")
	fs.StringVar(&c.mixSpec, "mix", "browse=50,product=20,cart=20,checkout=5,buycart=5", "actions and their weights (browse, product, cart, checkout, buycart)")
	fs.IntVar(&c.products, "products", 16, "products created for the run when admin credentials are known, so checkouts do not empty the catalogue's stock; 0: buy from the catalogue")
	fs.IntVar(&c.stock, "stock", 1_000_000, "stock of each product created (inventory takes at most 1000000)")
	fs.StringVar(&c.jsonOut, "json", "", "also write the report as JSON to this file")
	fs.DurationVar(&c.progress, "progress", time.Second, "interval of the progress line")
	fs.DurationVar(&c.timeout, "timeout", 30*time.Second, "deadline of one request")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if *curve != "" {
		for _, f := range strings.Split(*curve, ",") {
			m, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
			if err != nil || m <= 0 || m > 100 {
				return c, fmt.Errorf("-curve: %q is not a multiple in (0, 100]", f)
			}
			c.curve = append(c.curve, m)
		}
	}
	if c.adminPass == "" {
		c.adminPass = os.Getenv("KITSHOP_ADMIN_PASSWORD")
	}
	switch {
	case c.duration <= 0 || c.duration > maxDuration:
		return c, fmt.Errorf("-duration must be in (0, %s]", maxDuration)
	case c.requests == 0 || c.requests > maxRequests:
		return c, fmt.Errorf("-requests must be in [1, %d]", maxRequests)
	case c.concurrency < 1 || c.concurrency > 10_000:
		return c, fmt.Errorf("-concurrency must be in [1, 10000]")
	case c.rate < 0:
		return c, fmt.Errorf("-rate must not be negative")
	case c.burst && c.rate > 0:
		return c, fmt.Errorf("-burst and -rate exclude each other")
	case c.burst && c.url != "":
		return c, fmt.Errorf("-burst loads the shop's mix, not -url")
	case len(c.curve) > 0 && (c.burst || c.rate > 0):
		return c, fmt.Errorf("-curve sets its own rates: not with -burst or -rate")
	case c.progress <= 0:
		return c, fmt.Errorf("-progress must be positive")
	case c.products < 0 || c.products > 1000:
		return c, fmt.Errorf("-products must be in [0, 1000]")
	}
	if c.users <= 0 {
		c.users = c.concurrency
	}
	if c.users < c.concurrency {
		// A virtual user does one thing at a time: fewer users than the concurrency
		// would load less than the report says.
		return c, fmt.Errorf("-users (%d) must be at least -concurrency (%d)", c.users, c.concurrency)
	}
	return c, nil
}

type stackFile struct {
	GatewayURL    string `json:"gateway_url"`
	AdminEmail    string `json:"admin_email"`
	AdminPassword string `json:"admin_password"`
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	m, err := parseMix(c.mixSpec)
	if err != nil {
		return err
	}
	if c.stackFile != "" {
		b, err := os.ReadFile(c.stackFile)
		if err != nil {
			return err
		}
		var s stackFile
		if err := json.Unmarshal(b, &s); err != nil {
			return fmt.Errorf("%s: %w", c.stackFile, err)
		}
		c.target = firstOf(c.target, s.GatewayURL)
		c.adminEmail = firstOf(c.adminEmail, s.AdminEmail)
		c.adminPass = firstOf(c.adminPass, s.AdminPassword)
	}
	c.target = firstOf(c.target, "http://127.0.0.1:8080")
	u, err := checkTarget(ctx, firstOf(c.url, c.target), c.allowRemote, net.DefaultResolver.LookupIPAddr)
	if err != nil {
		return err
	}
	base := strings.TrimSuffix(u.String(), "/")
	var path string
	if c.url != "" {
		base, path = u.Scheme+"://"+u.Host, u.RequestURI()
		c.mixSpec = "GET " + path
	}

	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns = max(c.concurrency, c.users) * 2
	tr.MaxIdleConnsPerHost = max(c.concurrency, c.users) * 2
	hc := &http.Client{Transport: tr, Timeout: c.timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	g := &generator{base: base, http: hc, mix: m, runID: randomHex(4), path: path}

	if path != "" {
		// Anonymous users, each one GET at a time.
		users := make([]*user, c.users)
		for i := range users {
			users[i] = &user{}
		}
		g.setUsers(users)
		fmt.Fprintf(stderr, "loadgen: GET %s%s; loading for %s (or %d requests)\n", base, path, c.duration, c.requests)
	} else {
		fmt.Fprintf(stderr, "loadgen: preparing %d users and the products against %s\n", c.users, base)
		if err := g.prepare(ctx, c); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "loadgen: %d users, %d products; loading for %s (or %d requests)\n", c.users, len(g.skus), c.duration, c.requests)
	}

	g.limit = c.requests
	if len(c.curve) > 0 {
		return g.runCurve(ctx, c, stdout, stderr)
	}
	r := g.phase(ctx, c, stderr, func(ctx context.Context) {
		switch {
		case c.burst:
			g.runBurst(ctx)
		case c.rate > 0:
			g.runRate(ctx, c.rate, c.concurrency)
		default:
			g.runConcurrency(ctx, c.concurrency)
		}
	})
	switch {
	case c.burst:
		r.Mode, r.Concurrency = "burst", c.users
	case c.rate > 0:
		r.Mode, r.Rate, r.Concurrency = "rate", c.rate, c.concurrency
	default:
		r.Mode, r.Concurrency = "concurrency", c.concurrency
	}
	r.writeText(stdout)
	return errors.Join(writeJSON(c.jsonOut, r), ctx.Err())
}

// phase loads with load for at most c.duration (or c.requests answers), printing
// progress, and reports what it saw.
func (g *generator) phase(ctx context.Context, c config, stderr io.Writer, load func(context.Context)) Report {
	g.stats = newStats()
	start := time.Now()
	runCtx, cancel := context.WithTimeout(ctx, c.duration)
	defer cancel()
	g.cancel = cancel
	done := make(chan struct{})
	go g.progressLoop(runCtx, c.progress, stderr, done)
	load(runCtx)
	elapsed := time.Since(start)
	cancel()
	<-done
	r := g.stats.report(elapsed)
	r.Target, r.Users, r.Mix = g.base, c.users, c.mixSpec
	return r
}

// Curve is the result of -curve: the saturation point, then a step at each multiple.
type Curve struct {
	Saturation Report `json:"saturation"`
	Steps      []Step `json:"steps"`
}

// Step is one fixed-rate run of a curve.
type Step struct {
	Multiple float64 `json:"multiple"` // of the saturation point's actions/s
	Report
}

// runCurve measures the saturation point, a closed loop of -concurrency users, then
// loads at fixed rates of each -curve multiple of the actions it completed a second,
// with up to every user in flight: what goodput and the latency of admitted work do
// as the offered load goes past what the target can serve.
func (g *generator) runCurve(ctx context.Context, c config, stdout, stderr io.Writer) error {
	fmt.Fprintf(stderr, "loadgen: saturation point: %d users at once for %s\n", c.concurrency, c.duration)
	var curve Curve
	curve.Saturation = g.phase(ctx, c, stderr, func(ctx context.Context) { g.runConcurrency(ctx, c.concurrency) })
	curve.Saturation.Mode, curve.Saturation.Concurrency = "concurrency", c.concurrency
	curve.Saturation.writeText(stdout)
	saturation := curve.Saturation.ActionRate
	if saturation <= 0 {
		return errors.New("no action finished at the saturation point: nothing to scale the curve by")
	}
	for _, m := range c.curve {
		if ctx.Err() != nil {
			break
		}
		time.Sleep(c.settle)
		rate := m * saturation
		fmt.Fprintf(stderr, "loadgen: %.1f× the saturation point: %.0f actions/s for %s\n", m, rate, c.duration)
		r := g.phase(ctx, c, stderr, func(ctx context.Context) { g.runRate(ctx, rate, c.users) })
		r.Mode, r.Rate, r.Concurrency = "rate", rate, c.users
		r.writeText(stdout)
		curve.Steps = append(curve.Steps, Step{Multiple: m, Report: r})
	}
	return errors.Join(writeJSON(c.jsonOut, curve), ctx.Err())
}

// writeJSON writes v to path as indented JSON; an empty path writes nothing.
func writeJSON(path string, v any) error {
	if path == "" {
		return nil
	}
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

func firstOf(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
