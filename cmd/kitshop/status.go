package main

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/kitshop/kitshop/internal/stack"
)

// status prints every service in Consul with its instances and their checks.
func status(ctx context.Context, o stack.Options) error {
	s := &stack.Stack{Options: o, GatewayURL: "http://" + o.GatewayAddr}
	if running, err := stack.Load(o.State); err == nil {
		s = running
	}
	c, err := s.Consul()
	if err != nil {
		return err
	}
	names, _, err := c.Catalog().Services(nil)
	if err != nil {
		return fmt.Errorf("no Consul agent at %s: %w", s.Options.ConsulAddr, err)
	}
	var services []string
	for name := range names {
		if name != "consul" {
			services = append(services, name)
		}
	}
	sort.Strings(services)
	if len(services) == 0 {
		fmt.Println("no services registered in Consul")
	}
	for _, name := range services {
		entries, _, err := c.Health().Service(name, "", false, nil)
		if err != nil {
			return err
		}
		passing := 0
		var lines []string
		for _, e := range entries {
			state := e.Checks.AggregatedStatus()
			if state == "passing" {
				passing++
			}
			line := fmt.Sprintf("    %-8s %s:%d  %s", state, e.Service.Address, e.Service.Port, e.Service.ID)
			if len(e.Service.Tags) > 0 { // the local stack tags each instance with its name
				line += "  [" + strings.Join(e.Service.Tags, ",") + "]"
			}
			lines = append(lines, line)
		}
		sort.Strings(lines)
		fmt.Printf("%-13s %d/%d passing\n%s\n", name, passing, len(entries), strings.Join(lines, "\n"))
	}
	return gatewayBreakers(ctx, s)
}

// gatewayBreakers prints the gateway's breaker states, which its health answer carries.
func gatewayBreakers(ctx context.Context, s *stack.Stack) error {
	var health struct {
		Breakers map[string]string `json:"breakers"`
	}
	if _, err := stack.NewClient(s.GatewayURL).Call(ctx, "GET", "/health", nil, &health); err != nil {
		fmt.Printf("gateway at %s: %v\n", s.GatewayURL, err)
		return nil
	}
	var names []string
	for name := range health.Breakers {
		names = append(names, name)
	}
	sort.Strings(names)
	fmt.Println("gateway breakers:")
	for _, name := range names {
		fmt.Printf("    %-28s %s\n", name, health.Breakers[name])
	}
	return nil
}
