package deploy_test

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	consul "github.com/hashicorp/consul/api"
	"github.com/lib/pq"

	"github.com/kitshop/kitshop/pkg/testenv"
)

// prometheusBinaries returns the folder of prometheus and promtool built by
// deploy/prometheus/install.sh (Debian's are built without Consul discovery). Under
// CI it builds them if needed; elsewhere a missing build skips the test.
func prometheusBinaries(t *testing.T) string {
	t.Helper()
	args := []string{filepath.Join(root(t), "deploy", "prometheus", "install.sh")}
	if os.Getenv("CI") != "true" {
		args = append(args, "--check")
	}
	out, err := runErr(root(t), nil, nil, "bash", args...)
	if err != nil {
		testenv.Missing(t, "Prometheus with Consul discovery (deploy/prometheus/install.sh)", err)
	}
	return lastLine(out)
}

func TestPromtool(t *testing.T) {
	promtool := filepath.Join(prometheusBinaries(t), "promtool")
	out := run(t, root(t), nil, nil, promtool, "check", "config", "deploy/prometheus/prometheus.yml")
	t.Logf("promtool check config: %s", lastLine(out))
}

// TestPrometheus starts a whole stack with the launcher on a private Consul, points a
// real Prometheus at that Consul with deploy/prometheus/prometheus.yml, and wants
// every instance found and scraped (up == 1). Then, after a few shoppers' calls, every
// metric the Grafana dashboard names must be in the instances' live /metrics, and
// every dashboard query must be one Prometheus accepts.
func TestPrometheus(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the whole stack")
	}
	bin := prometheusBinaries(t)
	st := startStack(t)
	prom := startPrometheus(t, bin, st.ConsulAddr)

	want := instances(t, st.ConsulAddr)
	t.Logf("Consul lists %d instances: %s", len(want), strings.Join(want, " "))
	targets := waitTargetsUp(t, prom, want, 90*time.Second)
	t.Logf("Prometheus scrapes %d targets, all up", len(targets))

	var up promResult
	promQuery(t, prom, `up{job="kitshop"}`, &up)
	for _, s := range up {
		if s.Value[1] != "1" {
			t.Errorf("up%v = %v", s.Metric, s.Value[1])
		}
	}
	if len(up) != len(want) {
		t.Errorf("up{job=\"kitshop\"} has %d series, want %d", len(up), len(want))
	}

	shop(t, st.GatewayURL)

	d := loadDashboard(t)
	queries := d.queries()
	needed := map[string][]string{} // metric → where the dashboard uses it
	for where, q := range queries {
		for _, n := range metricNames(q) {
			if !prometheusSeries[n] {
				needed[n] = append(needed[n], where)
			}
		}
	}
	// Some series appear only once their first event happened (the outbox's first
	// publish, the recovery loop's first count): wait for them a while.
	var live map[string]bool
	deadline := time.Now().Add(60 * time.Second)
	for {
		live = liveMetrics(t, targets)
		missing := 0
		for n := range needed {
			if !live[n] {
				missing++
			}
		}
		if missing == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Second)
	}
	for n, where := range needed {
		if !live[n] {
			slices.Sort(where)
			t.Errorf("the dashboard uses %s (%s), which no instance's /metrics has", n, strings.Join(where, "; "))
		}
	}
	t.Logf("all %d metrics the dashboard names are in the live /metrics of %d instances", len(needed), len(targets))

	for where, q := range queries {
		q = strings.NewReplacer("$__rate_interval", "1m", "$service", ".*").Replace(q)
		var r promResult
		promQuery(t, prom, q, &r)
		t.Logf("%-70s %d series", where, len(r))
	}
}

// stack is a running stack: what the launcher records in <state>/stack.json, and the
// Consul agent it was given.
type stack struct {
	GatewayURL string `json:"gateway_url"`
	Procs      []struct {
		Name string `json:"name"`
	} `json:"procs"`
	ConsulAddr string `json:"-"`
}

// startStack runs `kitshop up -detach` on a private Consul agent, a free gateway port
// and databases of its own, so it clashes with nothing else on the machine; `kitshop
// down` stops it at the end and its databases are dropped.
func startStack(t *testing.T) stack {
	t.Helper()
	dir := root(t)
	state := t.TempDir()
	launcher := filepath.Join(t.TempDir(), "kitshop")
	run(t, dir, nil, nil, "go", "build", "-o", launcher, "./cmd/kitshop")
	consulAddr := privateConsulAddr(t)
	prefix := strings.ReplaceAll(testenv.Name("kitshop_deploytest"), "-", "_")
	t.Cleanup(func() { dropDatabases(t, prefix) })
	// A RabbitMQ virtual host of its own, so another stack on the broker (the
	// end-to-end suite's) never consumes this one's events, nor this one theirs.
	amqpURL, dropVhost, err := testenv.AMQPVhost(testenv.AMQPURL(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(dropVhost)
	// A failing up stops what it started itself.
	out, err := runErr(dir, nil, nil, launcher, "up", "-detach", "-state", state, "-db-prefix", prefix,
		"-consul-addr", consulAddr, "-gateway-addr", "127.0.0.1:0", "-timeout", "120s", "-amqp", amqpURL)
	if err != nil {
		t.Fatalf("kitshop up: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		if out, err := runErr(dir, nil, nil, launcher, "down", "-state", state); err != nil {
			t.Errorf("kitshop down: %v\n%s", err, out)
		}
	})
	b, err := os.ReadFile(filepath.Join(state, "stack.json"))
	if err != nil {
		t.Fatal(err)
	}
	s := stack{ConsulAddr: consulAddr}
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	t.Logf("stack up: gateway %s, Consul %s, %d processes", s.GatewayURL, s.ConsulAddr, len(s.Procs))
	return s
}

// dropDatabases drops the databases the launcher made for the services under prefix,
// on the server it used (KITSHOP_POSTGRES, as for the launcher). Without a reachable
// server the stack ran on memory stores and there is nothing to drop.
func dropDatabases(t *testing.T, prefix string) {
	server := "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable&connect_timeout=5"
	if v := os.Getenv("KITSHOP_POSTGRES"); v != "" {
		server = v
	}
	db, err := sql.Open("postgres", server)
	if err != nil {
		return
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if db.PingContext(ctx) != nil {
		return
	}
	for svc := range services {
		name := pq.QuoteIdentifier(prefix + "_" + svc)
		if _, err := db.ExecContext(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("drop database %s: %v", name, err)
		}
	}
}

// privateConsulAddr is a loopback address whose port and the three after it are free:
// the launcher's private dev agent takes them for its server and gossip ports.
func privateConsulAddr(t *testing.T) string {
	t.Helper()
	port, err := testenv.FreePorts(4)
	if err != nil {
		t.Fatal(err)
	}
	return "127.0.0.1:" + strconv.Itoa(port)
}

// instances are the host:port of every kitshop instance Consul lists as passing.
func instances(t *testing.T, consulAddr string) []string {
	t.Helper()
	conf := consul.DefaultConfig()
	conf.Address = consulAddr
	c, err := consul.NewClient(conf)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for svc := range services {
		entries, _, err := c.Health().Service(svc, "", true, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(entries) == 0 {
			t.Errorf("Consul lists no passing %s instance", svc)
		}
		for _, e := range entries {
			out = append(out, net.JoinHostPort(e.Service.Address, strconv.Itoa(e.Service.Port)))
		}
	}
	slices.Sort(out)
	return out
}

// startPrometheus runs prometheus with deploy/prometheus/prometheus.yml, its Consul
// server swapped for consulAddr and its intervals shortened to a second, in a temp dir
// on a free port, and returns its base URL once it is ready.
func startPrometheus(t *testing.T, bin, consulAddr string) string {
	t.Helper()
	dir := t.TempDir()
	b, err := os.ReadFile(filepath.Join(root(t), "deploy", "prometheus", "prometheus.yml"))
	if err != nil {
		t.Fatal(err)
	}
	addr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	config := string(b)
	for old, new := range map[string]string{
		"server: consul:8500":       "server: " + consulAddr,
		"scrape_interval: 15s":      "scrape_interval: 1s",
		"scrape_timeout: 10s":       "scrape_timeout: 1s",
		"evaluation_interval: 15s":  "evaluation_interval: 1s",
		"refresh_interval: 15s":     "refresh_interval: 1s",
		"targets: [localhost:9090]": "targets: [" + addr + "]",
	} {
		if strings.Count(config, old) != 1 {
			t.Fatalf("prometheus.yml no longer has exactly one %q; update this test", old)
		}
		config = strings.Replace(config, old, new, 1)
	}
	configFile := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(configFile, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	run(t, "", nil, nil, filepath.Join(bin, "promtool"), "check", "config", configFile)

	logFile, err := os.Create(filepath.Join(dir, "prometheus.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(bin, "prometheus"), "--config.file="+configFile,
		"--storage.tsdb.path="+filepath.Join(dir, "data"), "--web.listen-address="+addr, "--log.level=warn")
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		logFile.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logFile.Name())
			t.Logf("prometheus log:\n%s", b)
		}
	})
	base := "http://" + addr
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(base + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return base
			}
		}
		select {
		case <-done:
			b, _ := os.ReadFile(logFile.Name())
			t.Fatalf("prometheus exited:\n%s", b)
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("prometheus did not become ready in 30 s")
		}
	}
}

type target struct {
	Labels     map[string]string `json:"labels"`
	ScrapeURL  string            `json:"scrapeUrl"`
	Health     string            `json:"health"`
	LastError  string            `json:"lastError"`
	ScrapePool string            `json:"scrapePool"`
}

// waitTargetsUp waits until Prometheus's kitshop targets are exactly the instances in
// want, each scraped successfully.
func waitTargetsUp(t *testing.T, prom string, want []string, timeout time.Duration) []target {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		var body struct {
			Data struct {
				ActiveTargets []target `json:"activeTargets"`
			} `json:"data"`
		}
		getJSON(t, prom+"/api/v1/targets?state=active", &body)
		var kitshop []target
		var got []string
		allUp := true
		for _, tg := range body.Data.ActiveTargets {
			if tg.ScrapePool != "kitshop" {
				continue
			}
			kitshop = append(kitshop, tg)
			got = append(got, tg.Labels["instance"])
			allUp = allUp && tg.Health == "up"
			if tg.Labels["service"] == "" {
				t.Fatalf("target %s has no service label: the relabelling is broken", tg.ScrapeURL)
			}
		}
		slices.Sort(got)
		if allUp && slices.Equal(got, want) {
			return kitshop
		}
		if time.Now().After(deadline) {
			for _, tg := range kitshop {
				t.Logf("target %s service=%s health=%s %s", tg.ScrapeURL, tg.Labels["service"], tg.Health, tg.LastError)
			}
			t.Fatalf("after %s Prometheus scrapes %v (all up: %v), want %v", timeout, got, allUp, want)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

type promResult []struct {
	Metric map[string]string `json:"metric"`
	Value  [2]any            `json:"value"`
}

// promQuery runs an instant query, failing the test if Prometheus refuses it.
func promQuery(t *testing.T, prom, q string, out *promResult) {
	t.Helper()
	var body struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			ResultType string          `json:"resultType"`
			Result     json.RawMessage `json:"result"`
		} `json:"data"`
	}
	getJSON(t, prom+"/api/v1/query?query="+url.QueryEscape(q), &body)
	if body.Status != "success" {
		t.Errorf("Prometheus refuses %q: %s", q, body.Error)
		return
	}
	if body.Data.ResultType == "vector" {
		if err := json.Unmarshal(body.Data.Result, out); err != nil {
			t.Fatal(err)
		}
	}
}

func getJSON(t *testing.T, u string, v any) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
}

// liveMetrics is the set of metric names in the /metrics of every target.
func liveMetrics(t *testing.T, targets []target) map[string]bool {
	t.Helper()
	names := map[string]bool{}
	for _, tg := range targets {
		resp, err := http.Get(tg.ScrapeURL)
		if err != nil {
			t.Fatalf("GET %s: %v", tg.ScrapeURL, err)
		}
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			if line == "" || line[0] == '#' {
				continue
			}
			if i := strings.IndexAny(line, "{ "); i > 0 {
				names[line[:i]] = true
			}
		}
		resp.Body.Close()
	}
	return names
}

// shop walks a shopper through the gateway so that the services record what the
// dashboard shows: a sign-up, a login, browsing, a 404, a confirmed checkout, a
// declined one, and the emails.
func shop(t *testing.T, gateway string) {
	t.Helper()
	c := &shopper{t: t, base: gateway}
	email := testenv.Name("deploy-test") + "@kitshop.local"
	password := "correct-horse-battery-staple"
	c.call("POST", "/v1/users", map[string]string{"email": email, "password": password, "name": "Deploy Test"}, nil, http.StatusCreated)
	var login struct {
		AccessToken string `json:"access_token"`
	}
	c.call("POST", "/v1/auth/login", map[string]string{"email": email, "password": password}, &login, http.StatusOK)
	c.token = login.AccessToken
	var page struct {
		Products []struct {
			SKU string `json:"sku"`
		} `json:"products"`
	}
	c.call("GET", "/v1/products?limit=2", nil, &page, http.StatusOK)
	if len(page.Products) == 0 {
		t.Fatal("the seeded catalogue is empty")
	}
	sku := page.Products[0].SKU
	c.call("GET", "/v1/products/no-such-sku", nil, nil, http.StatusNotFound)
	for _, tc := range []struct {
		card   string
		status []int
	}{
		{"4242424242424242", []int{http.StatusCreated, http.StatusAccepted}},
		{"4000000000000002", []int{http.StatusUnprocessableEntity}},
	} {
		c.call("PUT", "/v1/cart/items/"+sku, map[string]int{"quantity": 1}, nil, http.StatusOK)
		c.idempotencyKey = testenv.Name("deploy-test")
		c.call("POST", "/v1/orders", map[string]any{"payment": map[string]any{
			"card_number": tc.card, "exp_month": 12, "exp_year": time.Now().Year() + 2, "cvc": "123"}}, nil, tc.status...)
		c.idempotencyKey = ""
	}
	c.call("GET", "/v1/notifications", nil, nil, http.StatusOK)
}

type shopper struct {
	t              *testing.T
	base, token    string
	idempotencyKey string
}

func (c *shopper) call(method, path string, body, out any, want ...int) {
	c.t.Helper()
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			c.t.Fatal(err)
		}
		r = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, r)
	if err != nil {
		c.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if c.idempotencyKey != "" {
		req.Header.Set("Idempotency-Key", c.idempotencyKey)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if !slices.Contains(want, resp.StatusCode) {
		c.t.Fatalf("%s %s: %d %s, want %v", method, path, resp.StatusCode, b, want)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			c.t.Fatalf("%s %s: %v", method, path, err)
		}
	}
}
