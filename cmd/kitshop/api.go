package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// api calls the gateway as a user would, optionally printing each call in one line.
type api struct {
	base    string
	token   string
	verbose bool
	client  *http.Client
}

func newAPI(base string, verbose bool) *api {
	return &api{base: base, verbose: verbose, client: &http.Client{Timeout: 15 * time.Second}}
}

// apiError is a non-2xx answer.
type apiError struct {
	Status  int
	Code    string
	Message string
}

func (e *apiError) Error() string { return fmt.Sprintf("%d %s: %s", e.Status, e.Code, e.Message) }

// call sends body (JSON, when not nil) and decodes a 2xx answer into out (when not nil).
// headers are extra header name/value pairs.
func (a *api) call(ctx context.Context, method, path string, body, out any, headers ...string) (int, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, a.base+path, rd)
	if err != nil {
		return 0, err
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
	start := time.Now()
	resp, err := a.client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return resp.StatusCode, err
	}
	if a.verbose {
		fmt.Printf("    → %-6s %-42s %d  %4dms  %s\n", method, path, resp.StatusCode, time.Since(start).Milliseconds(), summary(data))
	}
	if resp.StatusCode >= 300 {
		var e struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		_ = json.Unmarshal(data, &e)
		return resp.StatusCode, &apiError{Status: resp.StatusCode, Code: e.Error.Code, Message: e.Error.Message}
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return resp.StatusCode, fmt.Errorf("%s %s: unreadable answer: %w", method, path, err)
		}
	}
	return resp.StatusCode, nil
}

// summary shortens a JSON answer for the progress line.
func summary(data []byte) string {
	s := strings.Join(strings.Fields(string(data)), " ")
	if len(s) > 110 {
		s = s[:107] + "..."
	}
	return s
}

func isCode(err error, code string) bool {
	e, ok := err.(*apiError)
	return ok && e.Code == code
}

// money as the API writes it.
type money struct {
	Amount   int64  `json:"amount"`
	Currency string `json:"currency"`
}

func (m money) String() string { return fmt.Sprintf("%s %d.%02d", m.Currency, m.Amount/100, m.Amount%100) }

func (a *api) login(ctx context.Context, email, password string) error {
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if _, err := a.call(ctx, "POST", "/v1/auth/login", map[string]string{"email": email, "password": password}, &tok); err != nil {
		return err
	}
	a.token = tok.AccessToken
	return nil
}
