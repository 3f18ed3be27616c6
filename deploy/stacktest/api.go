package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"
)

// api calls one HTTP service of the stack, through its published port.
type api struct {
	base  string
	http  *http.Client
	token string // bearer token of the gateway's API
}

func newAPI(base string) *api {
	return &api{base: base, http: &http.Client{Timeout: 15 * time.Second}}
}

// noRedirects is the API with redirects answered, not followed.
func (a *api) noRedirects() *api {
	hc := *a.http
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &api{base: a.base, http: &hc, token: a.token}
}

// withCA is the same API over HTTPS, trusting only the CA in caFile.
func (a *api) withCA(base, caFile string) (*api, error) {
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, err
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s holds no certificate", caFile)
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}}
	return &api{base: base, http: &http.Client{Timeout: 15 * time.Second, Transport: tr}, token: a.token}, nil
}

// answer is a response, read whole.
type answer struct {
	status int
	header http.Header
	body   []byte
	tls    *tls.ConnectionState // nil over plain HTTP
}

// decode reads the body as JSON into v.
func (r answer) decode(v any) error {
	if err := json.Unmarshal(r.body, v); err != nil {
		return fmt.Errorf("status %d, unreadable body %.200q: %w", r.status, r.body, err)
	}
	return nil
}

// call sends body (JSON when not nil) with extra headers (name, value pairs).
func (a *api) call(ctx context.Context, method, path string, body any, headers ...string) (answer, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return answer{}, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, a.base+path, rd)
	if err != nil {
		return answer{}, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if a.token != "" {
		req.Header.Set("Authorization", "Bearer "+a.token)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := a.http.Do(req)
	if err != nil {
		return answer{}, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	return answer{status: resp.StatusCode, header: resp.Header, body: data, tls: resp.TLS}, err
}

// want calls and fails unless the status is the one wanted, decoding the body into out
// (when not nil).
func (a *api) want(ctx context.Context, status int, method, path string, body, out any, headers ...string) (answer, error) {
	r, err := a.call(ctx, method, path, body, headers...)
	if err != nil {
		return r, fmt.Errorf("%s %s: %w", method, path, err)
	}
	if r.status != status {
		return r, fmt.Errorf("%s %s: status %d, want %d: %.300s", method, path, r.status, status, r.body)
	}
	if out != nil {
		if err := r.decode(out); err != nil {
			return r, fmt.Errorf("%s %s: %w", method, path, err)
		}
	}
	return r, nil
}

// eventually calls try every interval until it succeeds or timeout passes, returning
// its last error.
func eventually(ctx context.Context, timeout, interval time.Duration, try func() error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		err := try()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("after %s: %w", timeout, err)
		case <-time.After(interval):
		}
	}
}
