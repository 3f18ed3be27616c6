// Command goproxy is the floor for a Go reverse proxy in gateway/bench/proxy.sh: the
// standard library's httputil.ReverseProxy to one upstream, with nothing else (no
// discovery, breaker, limits, log or metrics), so the gateway's own cost can be told
// apart from net/http's. Usage: goproxy <listen addr> <upstream host:port>
package main

import (
	"fmt"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: goproxy <listen addr> <upstream host:port>")
		os.Exit(2)
	}
	proxy := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: "http", Host: os.Args[2]})
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = 500 // as the gateway's upstream clients
	proxy.Transport = t
	proxy.ErrorLog = nil
	if err := http.ListenAndServe(os.Args[1], proxy); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
