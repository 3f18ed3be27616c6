package app_test

import (
	"context"
	"errors"
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	consul "github.com/hashicorp/consul/api"

	"github.com/kitshop/kitshop/pkg/app"
	"github.com/kitshop/kitshop/pkg/config"
	"github.com/kitshop/kitshop/pkg/testenv"
)

func newApp(t *testing.T, consulAddr string, args ...string) *app.App {
	t.Helper()
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	var cfg app.Config
	cfg.RegisterFlags(fs, testenv.Name("apptest"), ":0")
	args = append([]string{"-consul-addr", consulAddr, "-http-addr", "127.0.0.1:0", "-drain", "10ms", "-consul-resync", "200ms"}, args...)
	if err := config.Parse(fs, args, func(string) string { return "" }); err != nil {
		t.Fatal(err)
	}
	a, err := app.New(cfg, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Close)
	return a
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func instances(t *testing.T, c *consul.Client, service string, passingOnly bool) []*consul.ServiceEntry {
	t.Helper()
	entries, _, err := c.Health().Service(service, "", passingOnly, nil)
	if err != nil {
		t.Fatal(err)
	}
	return entries
}

// TestRunLifecycle: the instance registers the port it really got, passes its check,
// is registered again when the agent forgets it, and deregisters before it stops.
func TestRunLifecycle(t *testing.T) {
	c, addr := testenv.Consul(t)
	a := newApp(t, addr, "-tls=off") // plain calls; tls_test.go covers mTLS
	a.AddCheck("db", func(context.Context) error { return nil })
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- a.Run(ctx, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "hello") }))
	}()
	service := a.Config.Service

	testenv.Eventually(t, 15*time.Second, "a passing instance", func() bool { return len(instances(t, c, service, true)) == 1 })
	entry := instances(t, c, service, true)[0]
	if entry.Service.Port != a.Port() || entry.Service.Address != "127.0.0.1" {
		t.Fatalf("registered %s:%d, listening on %d", entry.Service.Address, entry.Service.Port, a.Port())
	}
	base := "http://127.0.0.1:" + strconv.Itoa(a.Port())
	if code, body := get(t, base+"/health"); code != 200 || !strings.Contains(body, `"db":"ok"`) {
		t.Fatalf("health %d %s", code, body)
	}
	if code, body := get(t, base+"/metrics"); code != 200 || !strings.Contains(body, "go_goroutines") {
		t.Fatalf("metrics %d", code)
	}
	if code, body := get(t, base+"/anything"); code != 200 || body != "hello" {
		t.Fatalf("handler %d %q", code, body)
	}

	// The agent forgets the instance (as a restarted dev agent does).
	if err := c.Agent().ServiceDeregister(entry.Service.ID); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 15*time.Second, "re-registration", func() bool { return len(instances(t, c, service, true)) == 1 })

	stop()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	if n := len(instances(t, c, service, false)); n != 0 {
		t.Fatalf("%d instances still registered after shutdown", n)
	}
}

func TestHealthFailsWithDependency(t *testing.T) {
	a := newApp(t, "", "-tls=off")
	a.AddCheck("db", func(context.Context) error { return errors.New("connection refused") })
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	go func() { _ = a.Run(ctx, http.NotFoundHandler()) }()
	base := "http://127.0.0.1:" + strconv.Itoa(a.Port())
	testenv.Eventually(t, 15*time.Second, "server", func() bool {
		resp, err := http.Get(base + "/health")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil
	})
	code, body := get(t, base+"/health")
	if code != 503 || !strings.Contains(body, `"db":"failing"`) || strings.Contains(body, "refused") {
		t.Fatalf("health %d %s: want 503, failing check, no error detail", code, body)
	}
}

func TestRegistrationFailsWithoutAgent(t *testing.T) {
	a := newApp(t, "127.0.0.1:1", "-tls=off")
	ctx, stop := context.WithTimeout(context.Background(), 15*time.Second)
	defer stop()
	if err := a.Run(ctx, http.NotFoundHandler()); err == nil || !strings.Contains(err.Error(), "consul") {
		t.Fatalf("Run = %v, want a consul registration error", err)
	}
}

// TestRunAdmits: at its admission limit an instance answers its routes 503 overloaded
// at once, while its health check still answers; a caller's deadline reaches the
// handler.
func TestRunAdmits(t *testing.T) {
	_, addr := testenv.Consul(t)
	a := newApp(t, addr, "-tls=off", "-admit-limit", "1", "-admit-wait", "0s")
	busy, release := make(chan struct{}), make(chan struct{})
	deadlines := make(chan time.Duration, 1)
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	go func() {
		_ = a.Run(ctx, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/deadline" {
				d, _ := r.Context().Deadline()
				deadlines <- time.Until(d)
				return
			}
			close(busy)
			<-release
		}))
	}()
	base := "http://" + a.HostPort()
	testenv.Eventually(t, 15*time.Second, "the instance serves", func() bool {
		resp, err := http.Get(base + "/health")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil
	})
	go func() {
		if resp, err := http.Get(base + "/hold"); err == nil {
			resp.Body.Close()
		}
	}()
	<-busy
	if status, body := get(t, base+"/more"); status != http.StatusServiceUnavailable || !strings.Contains(body, `"overloaded"`) {
		t.Fatalf("at the limit: %d %s", status, body)
	}
	if status, body := get(t, base+"/health"); status != http.StatusOK {
		t.Fatalf("health at the limit: %d %s", status, body)
	}
	close(release)

	// The held request gives its slot back as it finishes.
	testenv.Eventually(t, 15*time.Second, "a request with a deadline is admitted", func() bool {
		req, _ := http.NewRequest(http.MethodGet, base+"/deadline", nil)
		req.Header.Set("X-Request-Timeout-Ms", "1500")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	if d := <-deadlines; d <= 0 || d > 1500*time.Millisecond {
		t.Fatalf("the handler's deadline is in %v, want within the caller's 1.5 s", d)
	}
}

// TestConsulToken: the instance calls its agent with the token of -consul-token-file
// (which wins over -consul-token), or of -consul-token; a missing file stops it at start.
func TestConsulToken(t *testing.T) {
	tokens := make(chan string, 1)
	agent := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tokens <- r.Header.Get("X-Consul-Token")
		_, _ = io.WriteString(w, `{}`)
	}))
	defer agent.Close()
	addr := strings.TrimPrefix(agent.URL, "http://")
	file := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(file, []byte("from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		want string
	}{
		{name: "none", want: ""},
		{name: "flag", args: []string{"-consul-token", "from-flag"}, want: "from-flag"},
		{name: "file", args: []string{"-consul-token-file", file}, want: "from-file"},
		{name: "file wins", args: []string{"-consul-token", "from-flag", "-consul-token-file", file}, want: "from-file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := newApp(t, addr, append([]string{"-tls=off"}, tt.args...)...)
			if _, err := a.Consul.Agent().Self(); err != nil {
				t.Fatal(err)
			}
			if got := <-tokens; got != tt.want {
				t.Fatalf("the agent got token %q, want %q", got, tt.want)
			}
		})
	}

	cfg := app.Config{Service: "apptest", HTTPAddr: "127.0.0.1:0", ConsulAddr: addr, ConsulTokenFile: file + ".missing", LogLevel: "info"}
	if a, err := app.New(cfg, io.Discard); err == nil {
		a.Close()
		t.Fatal("New with a missing token file succeeded")
	}
}

// TestAdvertiseRoute: "-advertise-host auto" registers the address of the route to
// the agent (here loopback), and needs an agent address to find it.
func TestAdvertiseRoute(t *testing.T) {
	a := newApp(t, "127.0.0.1:8500", "-tls=off", "-advertise-host", app.AdvertiseRoute)
	if got := a.Config.AdvertiseHost; got != "127.0.0.1" {
		t.Fatalf("advertised host %q, want 127.0.0.1", got)
	}
	if !strings.HasPrefix(a.HostPort(), "127.0.0.1:") {
		t.Fatalf("HostPort %q", a.HostPort())
	}
	cfg := app.Config{Service: "apptest", HTTPAddr: "127.0.0.1:0", AdvertiseHost: app.AdvertiseRoute, TLS: app.TLSOff, LogLevel: "info"}
	if a, err := app.New(cfg, io.Discard); err == nil {
		a.Close()
		t.Fatal("New with -advertise-host auto and no Consul address succeeded")
	}
}

// TestEdgeAdminListener: with -admin-addr, the edge serves /metrics and the detailed
// /health there and registers that address in Consul, so Consul's check and
// Prometheus (which scrapes what Consul lists) reach it, and not the public port.
func TestEdgeAdminListener(t *testing.T) {
	c, addr := testenv.Consul(t)
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	cfg := app.Config{Edge: true}
	cfg.RegisterFlags(fs, testenv.Name("edgetest"), ":0")
	args := []string{"-consul-addr", addr, "-http-addr", "127.0.0.1:0", "-admin-addr", "127.0.0.1:0", "-tls=off", "-drain", "10ms"}
	if err := config.Parse(fs, args, func(string) string { return "" }); err != nil {
		t.Fatal(err)
	}
	a, err := app.New(cfg, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Close)
	serve(t, a, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "hello") }))
	testenv.Eventually(t, 15*time.Second, "passing in Consul", func() bool { return len(instances(t, c, cfg.Service, true)) == 1 })
	e := instances(t, c, cfg.Service, true)[0].Service
	if e.Port != a.AdminPort() || e.Meta["public_port"] != strconv.Itoa(a.Port()) {
		t.Fatalf("registered port %d (meta %v), want the admin port %d and the public one in meta", e.Port, e.Meta, a.AdminPort())
	}
	admin := "http://127.0.0.1:" + strconv.Itoa(a.AdminPort())
	if code, body := get(t, admin+"/metrics"); code != 200 || !strings.Contains(body, "go_goroutines") {
		t.Fatalf("admin /metrics: %d", code)
	}
	if code, body := get(t, admin+"/health"); code != 200 || !strings.Contains(body, `"service"`) {
		t.Fatalf("admin /health: %d %s", code, body)
	}
	if code, _ := get(t, admin+"/v1/anything"); code != 404 {
		t.Fatalf("the admin listener serves the API: %d", code)
	}
	if code, body := get(t, "http://127.0.0.1:"+strconv.Itoa(a.Port())+"/v1/anything"); code != 200 || body != "hello" {
		t.Fatalf("public port: %d %s", code, body)
	}
}

func TestAdminAddrIsForTheEdge(t *testing.T) {
	_, err := app.New(app.Config{Service: "x", HTTPAddr: "127.0.0.1:0", AdvertiseHost: "127.0.0.1", AdminAddr: "127.0.0.1:0", AdmitLimit: 1}, io.Discard)
	if err == nil {
		t.Fatal("a service took -admin-addr")
	}
}

// TestOpenDBExportsPool: the database OpenDB opens has its pool in the metrics.
func TestOpenDBExportsPool(t *testing.T) {
	a := newApp(t, "", "-tls=off", "-database-url", testenv.PostgresURL(t))
	db, err := a.OpenDB(context.Background(), fstest.MapFS{})
	if err != nil {
		t.Fatal(err)
	}
	families, err := a.Metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var maxOpen float64 = -1
	for _, f := range families {
		if f.GetName() == "kitshop_db_max_open_connections" {
			maxOpen = f.GetMetric()[0].GetGauge().GetValue()
		}
	}
	if want := db.Stats().MaxOpenConnections; maxOpen != float64(want) {
		t.Errorf("kitshop_db_max_open_connections = %v, want the pool's %d", maxOpen, want)
	}
}
