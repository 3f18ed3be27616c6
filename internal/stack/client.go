package stack

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// Client calls the gateway as a user would; with Verbose it prints each call in a line.
type Client struct {
	Base    string
	Token   string
	Verbose bool
	HTTP    *http.Client
}

// NewClient returns a client of the API at base (http://127.0.0.1:8080).
func NewClient(base string) *Client {
	return &Client{Base: base, HTTP: &http.Client{Timeout: 15 * time.Second}}
}

// APIError is a non-2xx answer.
type APIError struct {
	Status  int
	Code    string
	Message string
}

func (e *APIError) Error() string { return fmt.Sprintf("%d %s: %s", e.Status, e.Code, e.Message) }

// IsCode reports whether err is an answer with the given error code.
func IsCode(err error, code string) bool {
	var e *APIError
	return errors.As(err, &e) && e.Code == code
}

// Call sends body (as JSON, when not nil) and decodes a 2xx answer into out (when not
// nil). headers are extra name, value pairs. It returns the answer's status.
func (c *Client) Call(ctx context.Context, method, path string, body, out any, headers ...string) (int, error) {
	a, err := c.Send(ctx, method, path, body, out, headers...)
	return a.Status, err
}

// Answer is what an answer says besides its body.
type Answer struct {
	Status int
	Header http.Header
}

// Send is Call, returning the answer's headers too (its X-Trace-Id, say).
func (c *Client) Send(ctx context.Context, method, path string, body, out any, headers ...string) (Answer, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return Answer{}, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.Base+path, rd)
	if err != nil {
		return Answer{}, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	start := time.Now()
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return Answer{}, err
	}
	defer resp.Body.Close()
	a := Answer{Status: resp.StatusCode, Header: resp.Header}
	data, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return a, err
	}
	if c.Verbose {
		fmt.Printf("    → %-6s %-42s %d  %4dms  %s\n", method, path, resp.StatusCode, time.Since(start).Milliseconds(), summary(data))
	}
	if resp.StatusCode >= 300 {
		var e struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		_ = json.Unmarshal(data, &e)
		return a, &APIError{Status: resp.StatusCode, Code: e.Error.Code, Message: e.Error.Message}
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return a, fmt.Errorf("%s %s: unreadable answer: %w", method, path, err)
		}
	}
	return a, nil
}

// summary shortens a JSON answer for the progress line.
func summary(data []byte) string {
	s := strings.Join(strings.Fields(string(data)), " ")
	if len(s) > 110 {
		s = s[:107] + "..."
	}
	return s
}

// Login logs in and keeps the access token for the next calls.
func (c *Client) Login(ctx context.Context, email, password string) error {
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if _, err := c.Call(ctx, "POST", "/v1/auth/login", map[string]string{"email": email, "password": password}, &tok); err != nil {
		return err
	}
	c.Token = tok.AccessToken
	return nil
}

// Money as the API writes it.
type Money struct {
	Amount   int64  `json:"amount"`
	Currency string `json:"currency"`
}

func (m Money) String() string {
	return fmt.Sprintf("%s %d.%02d", m.Currency, m.Amount/100, m.Amount%100)
}
