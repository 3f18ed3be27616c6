package stack

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	consul "github.com/hashicorp/consul/api"
)

// startConsul reuses an agent that answers, or builds (consul/install.sh) and starts a
// dev agent, which the stack then owns and stops.
func (s *Stack) startConsul(ctx context.Context) error {
	addr := s.Options.ConsulAddr
	if consulLeader(addr) == nil {
		s.logf("Consul: using the agent already running at %s", addr)
		return nil
	}
	s.logf("Consul: building or reusing the agent binary (consul/install.sh; the first build takes minutes)")
	install := exec.CommandContext(ctx, "bash", filepath.Join(s.Options.Root, "consul", "install.sh"))
	install.Stderr = os.Stderr
	out, err := install.Output()
	if err != nil {
		return fmt.Errorf("consul/install.sh: %w", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	args, err := consulArgs(addr)
	if err != nil {
		return err
	}
	args = append(args, "-config-file", filepath.Join(s.Options.Root, "consul", "dev.hcl"))
	p, err := s.spawn(Proc{Name: "consul", Service: "consul"}, lines[len(lines)-1], args, nil)
	if err != nil {
		return err
	}
	s.Procs = append(s.Procs, p)
	if err := s.save(); err != nil {
		return err
	}
	if err := waitFor(ctx, 30*time.Second, func() bool { return consulLeader(addr) == nil }); err != nil {
		return fmt.Errorf("the Consul agent did not start; see %s", p.Log)
	}
	s.logf("Consul: dev agent started at %s", addr)
	return nil
}

// RestartConsul kills the stack's own Consul agent and starts a fresh one (a dev agent
// forgets every registration; the instances register again by themselves).
func (s *Stack) RestartConsul(ctx context.Context) error {
	for i, p := range s.Procs {
		if p.Service != "consul" {
			continue
		}
		stop(p, syscall.SIGKILL)
		s.Procs = append(s.Procs[:i], s.Procs[i+1:]...)
		if err := s.startConsul(ctx); err != nil {
			return err
		}
		return s.applyIntentions()
	}
	return fmt.Errorf("this stack uses a Consul agent it did not start")
}

// consulArgs runs a dev agent with its HTTP API at addr. On the standard port 8500 the
// agent keeps its other standard ports; on any other port (a second, private agent, as
// the end-to-end tests use) its server and gossip ports follow the HTTP port and DNS and
// gRPC are off, so it does not clash with an agent on the standard ports.
func consulArgs(addr string) ([]string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("consul address %q: %w", addr, err)
	}
	args := []string{"agent", "-dev", "-client", host, "-bind", "127.0.0.1", "-http-port", port}
	if port == "8500" {
		return args, nil
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65532 {
		return nil, fmt.Errorf("consul address %q: the port must be a number from 1 to 65532", addr)
	}
	return append(args, "-server-port", strconv.Itoa(n+1), "-serf-lan-port", strconv.Itoa(n+2),
		"-serf-wan-port", strconv.Itoa(n+3), "-dns-port", "-1", "-grpc-port", "-1", "-grpc-tls-port", "-1"), nil
}

func consulLeader(addr string) error {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get("http://" + addr + "/v1/status/leader")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var leader string
	if err := json.NewDecoder(resp.Body).Decode(&leader); err != nil || leader == "" {
		return fmt.Errorf("no leader")
	}
	return nil
}

// Consul is a client of the stack's Consul agent.
func (s *Stack) Consul() (*consul.Client, error) {
	conf := consul.DefaultConfig()
	conf.Address = s.Options.ConsulAddr
	return consul.NewClient(conf)
}

// WaitPassing waits until service has at least want passing instances, failing early
// when one of its processes has died.
func (s *Stack) WaitPassing(ctx context.Context, service string, want int) error {
	c, err := s.Consul()
	if err != nil {
		return err
	}
	var passing int
	err = waitFor(ctx, s.Options.Timeout, func() bool {
		entries, _, err := c.Health().Service(service, "", true, nil)
		passing = len(entries)
		return err == nil && passing >= want
	})
	if err == nil {
		return nil
	}
	for _, p := range s.Procs {
		if p.Service == service && !processAlive(p.PID) {
			return fmt.Errorf("%s exited; the end of its log (%s):\n%s", p.Name, p.Log, tail(p.Log, 15))
		}
	}
	return fmt.Errorf("%s: %d of %d instances passing after %s; see %s", service, passing, want, s.Options.Timeout, s.Logs())
}

// findGateway learns the gateway's port from Consul when it was asked to pick one
// (a gateway address ending in :0).
func (s *Stack) findGateway() error {
	if !strings.HasSuffix(s.GatewayURL, ":0") {
		return nil
	}
	c, err := s.Consul()
	if err != nil {
		return err
	}
	entries, _, err := c.Health().Service("gateway", "", true, nil)
	if err != nil || len(entries) == 0 {
		return fmt.Errorf("the gateway is not in Consul: %v", err)
	}
	e := entries[0].Service
	s.GatewayURL = "http://" + net.JoinHostPort(e.Address, strconv.Itoa(e.Port))
	s.setHTTPS()
	return s.save()
}

func (s *Stack) waitGateway(ctx context.Context) error {
	err := waitFor(ctx, s.Options.Timeout, func() bool {
		resp, err := http.Get(s.GatewayURL + "/health")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	if err != nil {
		return fmt.Errorf("the gateway at %s is not healthy after %s", s.GatewayURL, s.Options.Timeout)
	}
	return nil
}
