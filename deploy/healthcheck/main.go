// Command healthcheck is the container health check of every kitshop image: the images
// are distroless, with no shell or curl, so this static binary asks the service's own
// GET /health and exits 0 when it answers 200, 1 otherwise.
//
//	healthcheck [url]
//
// Without an argument it asks http://127.0.0.1:<port>/health, the port taken from
// KITSHOP_HTTP_ADDR, the same variable the service listens by.
//
// It speaks the one HTTP request it needs over net rather than importing net/http,
// which would make it three times bigger in every image.
package main

import (
	"bufio"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"time"
)

func main() {
	target, err := healthURL(os.Args[1:], os.Getenv("KITSHOP_HTTP_ADDR"))
	if err == nil {
		err = check(target, 2*time.Second)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "healthcheck:", err)
		os.Exit(1)
	}
}

// healthURL is the URL given, or the /health of the listen address addr reached over
// loopback (a wildcard or empty host means the service listens on every interface).
func healthURL(args []string, addr string) (string, error) {
	if len(args) > 1 {
		return "", fmt.Errorf("usage: healthcheck [url]")
	}
	if len(args) == 1 {
		return args[0], nil
	}
	if addr == "" {
		return "", fmt.Errorf("KITSHOP_HTTP_ADDR is not set and no URL was given")
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("KITSHOP_HTTP_ADDR=%q: %w", addr, err)
	}
	if port == "" || port == "0" {
		return "", fmt.Errorf("KITSHOP_HTTP_ADDR=%q: a health check needs a fixed port", addr)
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port) + "/health", nil
}

// check sends GET target over HTTP/1.1 and wants a 200 status line within timeout.
func check(target string, timeout time.Duration) error {
	u, err := url.Parse(target)
	if err != nil {
		return err
	}
	if u.Scheme != "http" || u.Host == "" {
		return fmt.Errorf("%s: want an http://host:port/ URL", target)
	}
	host := u.Host
	if u.Port() == "" {
		host = net.JoinHostPort(u.Hostname(), "80")
	}
	conn, err := net.DialTimeout("tcp", host, timeout)
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(timeout)); err != nil {
		return err
	}
	if _, err := fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: kitshop-healthcheck\r\nConnection: close\r\n\r\n", u.RequestURI(), u.Host); err != nil {
		return err
	}
	status, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return fmt.Errorf("%s: %w", target, err)
	}
	// "HTTP/1.1 200 OK"
	fields := strings.Fields(status)
	if len(fields) < 2 || !strings.HasPrefix(fields[0], "HTTP/") {
		return fmt.Errorf("%s: not an HTTP answer: %q", target, strings.TrimSpace(status))
	}
	if fields[1] != "200" {
		return fmt.Errorf("%s answered %s", target, strings.TrimSpace(strings.TrimPrefix(status, fields[0])))
	}
	return nil
}
