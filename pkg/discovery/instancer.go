package discovery

import (
	"context"
	"net"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/go-kit/kit/sd"
	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	consul "github.com/hashicorp/consul/api"

	"github.com/kitshop/kitshop/pkg/backoff"
)

// ConsulInstancer is an sd.Instancer of the passing instances of one service, fed by
// Consul blocking queries. It differs from go-kit's sd/consul instancer where a
// caller needs it to:
//   - after an error, or when Consul's index goes backwards (a restarted agent), it asks
//     again from index 0, so a restarted agent is heard at once rather than after a
//     blocking query with a stale index times out;
//   - it keeps the last good set while Consul is unreachable, and for Grace after that it
//     does not believe an empty answer: a restarted dev agent has forgotten every
//     registration until the instances register again (Registrar.Maintain does so within
//     seconds), and routing to the instances that are still there beats refusing all
//     calls. A non-empty answer is believed at once. An instance that really died is
//     still skipped by the client chain on its first refused connection.
type ConsulInstancer struct {
	client  *consul.Client
	service string
	port    func(*consul.AgentService) (int, bool) // which port of an instance is called
	grace   time.Duration
	wait    time.Duration
	logger  log.Logger

	mu        sync.Mutex
	instances []string
	subs      map[chan<- sd.Event]struct{}

	cancel context.CancelFunc
	done   chan struct{}
}

// NewConsulInstancer starts watching service's instances at their registered port
// (HTTP). Stop it when done.
func NewConsulInstancer(client *consul.Client, service string, grace time.Duration, logger log.Logger) *ConsulInstancer {
	return newConsulInstancer(client, service, httpPort, grace, logger)
}

// NewConsulGRPCInstancer watches service's instances at their gRPC port (GRPCPortMeta).
// An instance without one (a release before gRPC) is not an instance of this set.
func NewConsulGRPCInstancer(client *consul.Client, service string, grace time.Duration, logger log.Logger) *ConsulInstancer {
	return newConsulInstancer(client, service, grpcPort, grace, logger)
}

func httpPort(s *consul.AgentService) (int, bool) { return s.Port, true }

func grpcPort(s *consul.AgentService) (int, bool) {
	port, err := strconv.Atoi(s.Meta[GRPCPortMeta])
	return port, err == nil && port > 0
}

func newConsulInstancer(client *consul.Client, service string, port func(*consul.AgentService) (int, bool), grace time.Duration, logger log.Logger) *ConsulInstancer {
	ctx, cancel := context.WithCancel(context.Background())
	i := &ConsulInstancer{
		client:  client,
		service: service,
		port:    port,
		grace:   grace,
		wait:    30 * time.Second,
		logger:  log.With(logger, "component", "discovery", "upstream", service),
		subs:    map[chan<- sd.Event]struct{}{},
		cancel:  cancel,
		done:    make(chan struct{}),
	}
	go i.loop(ctx)
	return i
}

// Stop ends the watch.
func (i *ConsulInstancer) Stop() {
	i.cancel()
	<-i.done
}

// Close is Stop, for app.OnClose.
func (i *ConsulInstancer) Close() error {
	i.Stop()
	return nil
}

// Register implements sd.Instancer: ch gets the current set now and every change.
func (i *ConsulInstancer) Register(ch chan<- sd.Event) {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.subs[ch] = struct{}{}
	ch <- sd.Event{Instances: slices.Clone(i.instances)}
}

// Deregister implements sd.Instancer.
func (i *ConsulInstancer) Deregister(ch chan<- sd.Event) {
	i.mu.Lock()
	defer i.mu.Unlock()
	delete(i.subs, ch)
}

// Instances is the current set, for tests and logs.
func (i *ConsulInstancer) Instances() []string {
	i.mu.Lock()
	defer i.mu.Unlock()
	return slices.Clone(i.instances)
}

func (i *ConsulInstancer) publish(instances []string) {
	i.mu.Lock()
	defer i.mu.Unlock()
	if slices.Equal(instances, i.instances) {
		return
	}
	i.instances = instances
	for ch := range i.subs {
		ch <- sd.Event{Instances: slices.Clone(instances)}
	}
}

func (i *ConsulInstancer) loop(ctx context.Context) {
	defer close(i.done)
	var (
		index    uint64
		distrust time.Time // empty answers are not believed before this
		failures int       // consecutive failed queries
		retry    = backoff.Exponential{Min: 50 * time.Millisecond, Max: time.Second}
	)
	for {
		wait := i.wait
		if left := time.Until(distrust); left > 0 && left < wait {
			wait = left
		}
		q := (&consul.QueryOptions{WaitIndex: index, WaitTime: wait}).WithContext(ctx)
		entries, meta, err := i.client.Health().Service(i.service, "", true, q)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			if failures == 0 {
				_ = level.Warn(i.logger).Log("msg", "consul unreachable; keeping the last known instances", "instances", len(i.Instances()), "err", err)
			}
			index = 0
			distrust = time.Now().Add(i.grace)
			if !backoff.Sleep(ctx, retry.Delay(failures)) {
				return
			}
			failures++
			continue
		}
		if failures > 0 {
			_ = level.Info(i.logger).Log("msg", "consul reachable again")
			failures = 0
		}
		if meta.LastIndex < index {
			// The agent's state went backwards: it restarted. Ask afresh.
			index = 0
			distrust = time.Now().Add(i.grace)
			continue
		}
		index = max(meta.LastIndex, 1)
		instances := make([]string, 0, len(entries))
		for _, e := range entries {
			port, ok := i.port(e.Service)
			if !ok {
				continue
			}
			addr := e.Service.Address
			if addr == "" {
				addr = e.Node.Address
			}
			instances = append(instances, net.JoinHostPort(addr, strconv.Itoa(port)))
		}
		slices.Sort(instances)
		if len(instances) == 0 && time.Now().Before(distrust) && len(i.Instances()) > 0 {
			continue
		}
		i.publish(instances)
	}
}
