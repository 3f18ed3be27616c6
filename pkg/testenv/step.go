package testenv

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
)

// Step is one HTTP request to a service under test and the answer it must get. A table
// of steps whose rows are independent runs each as a subtest against a server of its
// own; steps that depend on the state the ones before them left are a sequence, run in
// order in one test (Do stops the test at the first that fails).
type Step struct {
	Name   string
	Method string
	Path   string            // appended to the server's URL; may carry a query
	Body   string            // sent as application/json when not empty
	Token  string            // sent as a bearer token when not empty
	Header map[string]string // set last, so it may override the content type

	Status int // the status the answer must have
	// Want is, for a Status of 400 and above, the code the JSON error body
	// ({"error": {"code", "message"}}) must carry, with a message; otherwise a string
	// the body must contain.
	Want string
}

// Do sends the step's request to base, the URL of the server under test, and fails t
// unless the answer is JSON with the status and body the step wants. It returns the
// body, for checks or state that are the test's own.
func (s Step) Do(t testing.TB, base string) string {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), s.Method, base+s.Path, strings.NewReader(s.Body))
	if err != nil {
		t.Fatalf("%s: %v", s.Name, err)
	}
	if s.Body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if s.Token != "" {
		req.Header.Set("Authorization", "Bearer "+s.Token)
	}
	for k, v := range s.Header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s: %s %s: %v", s.Name, s.Method, s.Path, err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatalf("%s: %s %s: reading the answer: %v", s.Name, s.Method, s.Path, err)
	}
	if resp.StatusCode != s.Status {
		t.Fatalf("%s: %s %s: status %d, want %d: %s", s.Name, s.Method, s.Path, resp.StatusCode, s.Status, body)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("%s: %s %s: content type %q, want JSON: %s", s.Name, s.Method, s.Path, ct, body)
	}
	if s.Status >= 400 {
		var e struct {
			Error struct{ Code, Message string }
		}
		if err := json.Unmarshal(body, &e); err != nil || e.Error.Code != s.Want || e.Error.Message == "" {
			t.Fatalf("%s: %s %s: error body %s, want code %q with a message", s.Name, s.Method, s.Path, body, s.Want)
		}
	} else if !bytes.Contains(body, []byte(s.Want)) {
		t.Fatalf("%s: %s %s: body %s does not contain %s", s.Name, s.Method, s.Path, body, s.Want)
	}
	return string(body)
}
