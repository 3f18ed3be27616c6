package gateway

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-kit/kit/sd"
	"github.com/go-kit/log"
	consul "github.com/hashicorp/consul/api"

	"github.com/kitshop/kitshop/pkg/discovery"
	"github.com/kitshop/kitshop/pkg/testenv"
)

// register puts in into Consul as an instance of service, as app.Run does, keeping
// the registration alive every maintain (a restarted dev agent forgets it).
func register(t *testing.T, c *consul.Client, service string, in *instance, maintain time.Duration) {
	t.Helper()
	_, portStr, _ := net.SplitHostPort(in.addr())
	port, _ := strconv.Atoi(portStr)
	r := discovery.NewRegistrar(c, discovery.Registration{
		Service: service, Host: "127.0.0.1", Port: port,
		CheckInterval: time.Second, CheckTimeout: time.Second, DeregisterAfter: time.Minute,
	}, log.NewNopLogger())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := r.Register(ctx); err != nil {
		t.Fatal(err)
	}
	mctx, stop := context.WithCancel(context.Background())
	go r.Maintain(mctx, maintain)
	t.Cleanup(func() {
		stop()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = r.Deregister(ctx)
	})
}

func passing(c *consul.Client, service string) []string {
	entries, _, err := c.Health().Service(service, "", true, nil)
	if err != nil {
		return nil
	}
	var addrs []string
	for _, e := range entries {
		addrs = append(addrs, fmt.Sprintf("%s:%d", e.Service.Address, e.Service.Port))
	}
	slices.Sort(addrs)
	return addrs
}

func addrsOf(ins ...*instance) []string {
	var addrs []string
	for _, in := range ins {
		addrs = append(addrs, in.addr())
	}
	slices.Sort(addrs)
	return addrs
}

// consulGateway is a gateway whose inventory, under a name unique to the test, is
// found in c.
func consulGateway(t *testing.T, c *consul.Client, keys testKeys) (*httptest.Server, *discovery.ConsulInstancer, string) {
	t.Helper()
	name := testenv.Name("inventory")
	ins := discovery.NewConsulInstancer(c, name, 15*time.Second, log.NewNopLogger())
	t.Cleanup(ins.Stop)
	o := testOptions(keys.verifier)
	o.Services = map[string]string{InventoryService: name}
	for _, s := range []string{UserService, OrderService, NotificationService} {
		o.Services[s] = testenv.Name(s)
	}
	o.Instancer = func(service string) (sd.Instancer, error) {
		if service == name {
			return ins, nil
		}
		return sd.FixedInstancer(nil), nil
	}
	return startGateway(t, o), ins, name
}

func getProduct(gw *httptest.Server) (int, error) {
	resp, err := http.Get(gw.URL + "/v1/products/" + testSKU)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

func TestConsulRoundRobinJoinAndLeave(t *testing.T) {
	c, _ := testenv.Consul(t)
	keys := newTestKeys(t)
	gw, ins, name := consulGateway(t, c, keys)
	three := []*instance{startInventory(t, keys.verifier), startInventory(t, keys.verifier), startInventory(t, keys.verifier)}
	for _, in := range three {
		register(t, c, name, in, 5*time.Second)
	}
	testenv.Eventually(t, 10*time.Second, "3 passing instances in Consul", func() bool { return len(passing(c, name)) == 3 })
	took := testenv.Eventually(t, 2*time.Second, "the gateway sees the 3 instances", func() bool { return slices.Equal(ins.Instances(), addrsOf(three...)) })
	t.Logf("3 instances in the pool %v after Consul had them passing", took)

	const n = 300
	for range n {
		if status, err := getProduct(gw); err != nil || status != 200 {
			t.Fatalf("status %d, err %v", status, err)
		}
	}
	for i, in := range three {
		if hits := in.hits.Load(); hits < n/3-5 || hits > n/3+5 {
			t.Errorf("instance %d served %d of %d requests; round robin gives each about %d", i, hits, n, n/3)
		}
	}

	// A new instance is used within 2 s of passing its check.
	fourth := startInventory(t, keys.verifier)
	register(t, c, name, fourth, 5*time.Second)
	testenv.Eventually(t, 10*time.Second, "the 4th instance passing in Consul", func() bool { return len(passing(c, name)) == 4 })
	took = testenv.Eventually(t, 2*time.Second, "the 4th instance serving through the gateway", func() bool {
		_, _ = getProduct(gw)
		return fourth.hits.Load() > 0
	})
	t.Logf("new instance served its first request %v after passing", took)

	// An instance failing its check leaves the pool within 2 s of Consul marking it.
	fourth.sick.Store(true)
	testenv.Eventually(t, 10*time.Second, "the 4th instance critical in Consul", func() bool { return len(passing(c, name)) == 3 })
	took = testenv.Eventually(t, 2*time.Second, "the 4th instance out of the pool", func() bool { return slices.Equal(ins.Instances(), addrsOf(three...)) })
	t.Logf("failing instance left the pool %v after Consul marked it critical", took)
	before := fourth.hits.Load()
	for range 30 {
		_, _ = getProduct(gw)
	}
	if fourth.hits.Load() != before {
		t.Error("the failing instance still gets requests")
	}
}

// load runs GETs from workers goroutines until stop is closed, counting answers that
// are not 200.
func load(gw *httptest.Server, workers int, stop <-chan struct{}) (done func() (total, failed int64, firstErr string)) {
	var total, failed atomic.Int64
	var first atomic.Value
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				status, err := getProduct(gw)
				total.Add(1)
				if err != nil || status != 200 {
					failed.Add(1)
					first.CompareAndSwap(nil, fmt.Sprintf("status %d, err %v", status, err))
				}
			}
		}()
	}
	return func() (int64, int64, string) {
		wg.Wait()
		s, _ := first.Load().(string)
		return total.Load(), failed.Load(), s
	}
}

func TestConsulKillInstanceUnderLoad(t *testing.T) {
	c, _ := testenv.Consul(t)
	keys := newTestKeys(t)
	gw, ins, name := consulGateway(t, c, keys)
	three := []*instance{startInventory(t, keys.verifier), startInventory(t, keys.verifier), startInventory(t, keys.verifier)}
	for _, in := range three {
		register(t, c, name, in, 5*time.Second)
	}
	testenv.Eventually(t, 10*time.Second, "the gateway sees 3 instances", func() bool { return len(ins.Instances()) == 3 })

	stop := make(chan struct{})
	done := load(gw, 8, stop)
	time.Sleep(time.Second)
	victim := three[1]
	victim.srv.CloseClientConnections() // in-flight requests break off mid-answer
	victim.srv.Listener.Close()         // new connections are refused
	victim.srv.CloseClientConnections()
	time.Sleep(3 * time.Second)
	close(stop)
	total, failed, first := done()
	t.Logf("%d requests, %d failed; victim served %d", total, failed, victim.hits.Load())
	if failed > 0 {
		t.Errorf("%d of %d idempotent requests failed after an instance died (first: %s)", failed, total, first)
	}
	testenv.Eventually(t, 5*time.Second, "the dead instance out of the pool", func() bool { return !slices.Contains(ins.Instances(), victim.addr()) })
}

func TestConsulBreakerOpensAndCloses(t *testing.T) {
	c, _ := testenv.Consul(t)
	keys := newTestKeys(t)
	gw, ins, name := consulGateway(t, c, keys)
	in := startInventory(t, keys.verifier)
	register(t, c, name, in, 5*time.Second)
	testenv.Eventually(t, 10*time.Second, "the gateway sees the instance", func() bool { return len(ins.Instances()) == 1 })

	in.fail.Store(true)
	testenv.Eventually(t, 5*time.Second, "the breaker opens", func() bool {
		resp, body := call(t, "GET", gw.URL+"/v1/products/"+testSKU, nil, nil)
		return resp.StatusCode == 503 && strings.Contains(body, "circuit breaker is open") && resp.Header.Get("Retry-After") != ""
	})
	hits := in.hits.Load()
	for range 10 {
		call(t, "GET", gw.URL+"/v1/products/"+testSKU, nil, nil)
	}
	if in.hits.Load() != hits {
		t.Errorf("an open breaker let %d calls through", in.hits.Load()-hits)
	}

	in.fail.Store(false)
	took := testenv.Eventually(t, 5*time.Second, "the breaker closes", func() bool {
		status, _ := getProduct(gw)
		return status == 200
	})
	t.Logf("breaker closed %v after the upstream recovered (sleep window 500ms)", took)
	for range 20 {
		if status, err := getProduct(gw); status != 200 {
			t.Fatalf("after recovery: status %d, err %v", status, err)
		}
	}
}

// privateConsul is a Consul dev agent of this test alone, so restarting it disturbs
// nobody else's tests.
type privateConsul struct {
	bin, dir string
	ports    [4]int // http, server, serf lan, serf wan
	cmd      *exec.Cmd
}

func startPrivateConsul(t *testing.T) *privateConsul {
	t.Helper()
	out, err := exec.Command(filepath.Join("..", "consul", "install.sh")).Output()
	if err != nil {
		testenv.Missing(t, "the Consul binary (consul/install.sh)", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	p := &privateConsul{bin: lines[len(lines)-1], dir: t.TempDir()}
	// Below the ephemeral range: the agent is restarted on the same ports, and an
	// outgoing connection could otherwise take one in between.
	base, err := testenv.FreePorts(len(p.ports))
	if err != nil {
		t.Fatal(err)
	}
	for i := range p.ports {
		p.ports[i] = base + i
	}
	p.start(t)
	t.Cleanup(p.kill)
	return p
}

func (p *privateConsul) addr() string { return "127.0.0.1:" + strconv.Itoa(p.ports[0]) }

func (p *privateConsul) start(t *testing.T) {
	t.Helper()
	logFile, err := os.OpenFile(filepath.Join(p.dir, "consul.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	p.cmd = exec.Command(p.bin, "agent", "-dev", "-bind", "127.0.0.1", "-client", "127.0.0.1",
		"-node", "gateway-test", "-log-level", "warn",
		"-http-port", strconv.Itoa(p.ports[0]), "-server-port", strconv.Itoa(p.ports[1]),
		"-serf-lan-port", strconv.Itoa(p.ports[2]), "-serf-wan-port", strconv.Itoa(p.ports[3]),
		"-dns-port", "-1", "-grpc-port", "-1", "-hcl", "ports { grpc_tls = -1 }")
	p.cmd.Stdout, p.cmd.Stderr = logFile, logFile
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	conf := consul.DefaultConfig()
	conf.Address = p.addr()
	c, _ := consul.NewClient(conf)
	testenv.Eventually(t, 20*time.Second, "the private Consul agent has a leader", func() bool {
		leader, err := c.Status().Leader()
		return err == nil && leader != ""
	})
}

func (p *privateConsul) kill() {
	if p.cmd != nil && p.cmd.Process != nil {
		_ = p.cmd.Process.Kill()
		_ = p.cmd.Wait()
	}
}

func (p *privateConsul) log() string {
	f, err := os.Open(filepath.Join(p.dir, "consul.log"))
	if err != nil {
		return ""
	}
	defer f.Close()
	var b strings.Builder
	s := bufio.NewScanner(f)
	for s.Scan() {
		b.WriteString(s.Text() + "\n")
	}
	return b.String()
}

// The agent dies and comes back empty (a dev agent keeps nothing): routing goes on
// with the instances known before, and the watch resumes, so an instance that
// appears afterwards joins the pool.
func TestConsulAgentRestart(t *testing.T) {
	agent := startPrivateConsul(t)
	conf := consul.DefaultConfig()
	conf.Address = agent.addr()
	c, err := consul.NewClient(conf)
	if err != nil {
		t.Fatal(err)
	}
	keys := newTestKeys(t)
	gw, ins, name := consulGateway(t, c, keys)
	two := []*instance{startInventory(t, keys.verifier), startInventory(t, keys.verifier)}
	for _, in := range two {
		register(t, c, name, in, 2*time.Second)
	}
	testenv.Eventually(t, 10*time.Second, "the gateway sees 2 instances", func() bool { return len(ins.Instances()) == 2 })

	stop := make(chan struct{})
	done := load(gw, 2, stop)
	time.Sleep(500 * time.Millisecond)
	agent.kill()
	time.Sleep(time.Second)
	agent.start(t)
	testenv.Eventually(t, 15*time.Second, "the instances registered again and passing", func() bool { return len(passing(c, name)) == 2 })

	third := startInventory(t, keys.verifier)
	register(t, c, name, third, 2*time.Second)
	testenv.Eventually(t, 10*time.Second, "the new instance passing", func() bool { return len(passing(c, name)) == 3 })
	took := testenv.Eventually(t, 2*time.Second, "the new instance in the gateway's pool after the restart", func() bool { return len(ins.Instances()) == 3 })
	t.Logf("instance registered after the restart joined %v after passing", took)
	time.Sleep(500 * time.Millisecond)
	close(stop)
	total, failed, first := done()
	t.Logf("%d requests across the restart, %d failed", total, failed)
	if failed > 0 {
		t.Errorf("%d of %d requests failed while Consul restarted (first: %s)\nconsul log:\n%s", failed, total, first, agent.log())
	}
	if third.hits.Load() == 0 {
		t.Error("the new instance got no requests")
	}
}
