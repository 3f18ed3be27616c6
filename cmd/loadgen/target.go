package main

import (
	"context"
	"fmt"
	"net"
	"net/url"
)

// checkTarget refuses anything but a loopback target unless remote is allowed: a load
// generator pointed at someone else's server by mistake is an attack.
func checkTarget(ctx context.Context, raw string, allowRemote bool, resolve func(context.Context, string) ([]net.IPAddr, error)) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("target %q is not an http(s) URL", raw)
	}
	if allowRemote {
		return u, nil
	}
	host := u.Hostname()
	if ip := net.ParseIP(host); ip != nil {
		if !ip.IsLoopback() {
			return nil, fmt.Errorf("target %s is not a loopback address (-allow-remote to load it anyway)", host)
		}
		return u, nil
	}
	addrs, err := resolve(ctx, host)
	if err != nil {
		return nil, fmt.Errorf("target %s: %w", host, err)
	}
	if len(addrs) == 0 {
		return nil, fmt.Errorf("target %s has no address", host)
	}
	for _, a := range addrs {
		if !a.IP.IsLoopback() {
			return nil, fmt.Errorf("target %s resolves to %s, not loopback (-allow-remote to load it anyway)", host, a.IP)
		}
	}
	return u, nil
}
