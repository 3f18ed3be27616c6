// Package discovery registers a service instance in Consul and keeps it registered.
package discovery

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"maps"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	consul "github.com/hashicorp/consul/api"
)

// Registration describes one instance.
type Registration struct {
	Service string
	Host    string // address others reach it at
	Port    int
	Tags    []string
	Meta    map[string]string

	// GRPCPort, when set, is the instance's gRPC listener: registered as the meta field
	// GRPCPortMeta, with a gRPC health check of its own (over TLS when GRPCTLS), so
	// that an instance is passing only while both its transports answer.
	GRPCPort int
	GRPCTLS  bool

	// CheckInterval is how often Consul calls GET /health; CheckTimeout bounds each call.
	CheckInterval time.Duration
	CheckTimeout  time.Duration
	// DeregisterAfter removes an instance whose check stays critical (Consul's minimum
	// is 1 minute). Routing must not rely on it: clients read passing instances only.
	DeregisterAfter time.Duration
}

// GRPCPortMeta is the meta field holding an instance's gRPC port.
const GRPCPortMeta = "grpc_port"

// Registrar keeps one instance registered with the local Consul agent.
type Registrar struct {
	client *consul.Client
	reg    *consul.AgentServiceRegistration
	logger log.Logger
}

// NewRegistrar prepares the registration of r with a unique instance ID.
func NewRegistrar(client *consul.Client, r Registration, logger log.Logger) *Registrar {
	hostPort := net.JoinHostPort(r.Host, strconv.Itoa(r.Port))
	check := &consul.AgentServiceCheck{
		HTTP:                           "http://" + hostPort + "/health",
		Interval:                       r.CheckInterval.String(),
		Timeout:                        r.CheckTimeout.String(),
		DeregisterCriticalServiceAfter: r.DeregisterAfter.String(),
	}
	id := fmt.Sprintf("%s-%s-%d-%s", r.Service, r.Host, r.Port, randomSuffix())
	check.CheckID = "service:" + id
	checks := consul.AgentServiceChecks{check}
	if r.GRPCPort > 0 {
		r.Meta = maps.Clone(r.Meta)
		if r.Meta == nil {
			r.Meta = map[string]string{}
		}
		r.Meta[GRPCPortMeta] = strconv.Itoa(r.GRPCPort)
		checks = append(checks, &consul.AgentServiceCheck{
			CheckID: "service:" + id + ":grpc",
			Name:    "gRPC health",
			GRPC:    net.JoinHostPort(r.Host, strconv.Itoa(r.GRPCPort)),
			// The instance's certificate is a Connect leaf, which the agent's checks do
			// not verify; the check asks whether it serves, not who it is.
			GRPCUseTLS:                     r.GRPCTLS,
			TLSSkipVerify:                  r.GRPCTLS,
			Interval:                       check.Interval,
			Timeout:                        check.Timeout,
			DeregisterCriticalServiceAfter: check.DeregisterCriticalServiceAfter,
		})
	}
	return &Registrar{
		client: client,
		logger: logger,
		reg: &consul.AgentServiceRegistration{
			ID:      id,
			Name:    r.Service,
			Address: r.Host,
			Port:    r.Port,
			Tags:    r.Tags,
			Meta:    r.Meta,
			Checks:  checks,
		},
	}
}

// ID is the instance ID in Consul.
func (r *Registrar) ID() string { return r.reg.ID }

// Register registers the instance, reporting failure (go-kit's Registrar only logs it).
func (r *Registrar) Register(ctx context.Context) error {
	opts := consul.ServiceRegisterOpts{ReplaceExistingChecks: true}.WithContext(ctx)
	if err := r.client.Agent().ServiceRegisterOpts(r.reg, opts); err != nil {
		return fmt.Errorf("consul: register %s: %w", r.reg.ID, err)
	}
	return nil
}

// Deregister removes the instance.
func (r *Registrar) Deregister(ctx context.Context) error {
	opts := (&consul.QueryOptions{}).WithContext(ctx)
	if err := r.client.Agent().ServiceDeregisterOpts(r.reg.ID, opts); err != nil {
		return fmt.Errorf("consul: deregister %s: %w", r.reg.ID, err)
	}
	return nil
}

// Maintain checks every interval that the agent still knows the instance and registers
// it again when not (a dev agent that restarted has forgotten everything). It returns
// when ctx is done.
func (r *Registrar) Maintain(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		svc, _, err := r.client.Agent().Service(r.reg.ID, (&consul.QueryOptions{}).WithContext(ctx))
		if err == nil && svc != nil {
			continue
		}
		if ctx.Err() != nil {
			return
		}
		if err := r.Register(ctx); err != nil {
			_ = level.Warn(r.logger).Log("msg", "consul re-registration failed", "err", err)
			continue
		}
		_ = level.Info(r.logger).Log("msg", "re-registered in consul", "id", r.reg.ID)
	}
}

func randomSuffix() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// RouteAddress is the local IP address of this machine's route to target (host:port,
// or an http:// URL): in a container, its own address on the network it shares with
// target, which is where target's side reaches it back. Nothing is sent.
func RouteAddress(target string) (string, error) {
	if u, err := url.Parse(target); err == nil && u.Host != "" && strings.Contains(target, "://") {
		target = u.Host
	}
	conn, err := net.Dial("udp", target)
	if err != nil {
		return "", fmt.Errorf("route to %s: %w", target, err)
	}
	defer conn.Close()
	return conn.LocalAddr().(*net.UDPAddr).IP.String(), nil
}
