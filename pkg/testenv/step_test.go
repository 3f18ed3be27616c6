package testenv_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/kitshop/kitshop/pkg/testenv"
)

// newAnswerServer answers each path with a fixed status, content type and body, and
// /echo with the request it got, as JSON.
func newAnswerServer(t *testing.T) *httptest.Server {
	answers := map[string]struct {
		status      int
		contentType string
		body        string
	}{
		"/product":    {200, "application/json", `{"sku":"A","available":10}`},
		"/missing":    {404, "application/json; charset=utf-8", `{"error":{"code":"not_found","message":"no such thing"}}`},
		"/no-message": {400, "application/json", `{"error":{"code":"invalid"}}`},
		"/not-json":   {200, "text/plain", `"sku":"A"`},
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/echo" {
			body, _ := io.ReadAll(r.Body)
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(map[string]string{
				"method": r.Method, "query": r.URL.RawQuery, "body": string(body),
				"content_type": r.Header.Get("Content-Type"), "authorization": r.Header.Get("Authorization"),
				"x_test": r.Header.Get("X-Test"),
			})
			return
		}
		a := answers[r.URL.Path]
		w.Header().Set("Content-Type", a.contentType)
		w.WriteHeader(a.status)
		_, _ = io.WriteString(w, a.body)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestStepDoChecksTheAnswer(t *testing.T) {
	srv := newAnswerServer(t)
	tests := []struct {
		step     testenv.Step
		wantFail string // a part of the failure, "" for none
	}{
		{testenv.Step{Name: "body as wanted", Method: "GET", Path: "/product", Status: 200, Want: `"available":10`}, ""},
		{testenv.Step{Name: "error as wanted", Method: "GET", Path: "/missing", Status: 404, Want: "not_found"}, ""},
		{testenv.Step{Name: "other status", Method: "GET", Path: "/missing", Status: 200, Want: "sku"}, "GET /missing: status 404, want 200"},
		{testenv.Step{Name: "other error code", Method: "GET", Path: "/missing", Status: 404, Want: "gone"}, `want code "gone"`},
		{testenv.Step{Name: "error without a message", Method: "GET", Path: "/no-message", Status: 400, Want: "invalid"}, `want code "invalid" with a message`},
		{testenv.Step{Name: "body lacks it", Method: "GET", Path: "/product", Status: 200, Want: `"available":9`}, `does not contain "available":9`},
		{testenv.Step{Name: "not JSON", Method: "GET", Path: "/not-json", Status: 200, Want: "sku"}, `content type "text/plain", want JSON`},
	}
	for _, tt := range tests {
		t.Run(tt.step.Name, func(t *testing.T) {
			var body string
			got := failure(t, func(tb testing.TB) { body = tt.step.Do(tb, srv.URL) })
			switch {
			case tt.wantFail == "" && got != "":
				t.Fatalf("failed: %s", got)
			case tt.wantFail != "" && !strings.Contains(got, tt.wantFail):
				t.Fatalf("failure %q, want one with %q", got, tt.wantFail)
			case tt.wantFail != "" && !strings.HasPrefix(got, tt.step.Name+": "):
				t.Fatalf("failure %q does not name the step", got)
			case tt.wantFail == "" && !strings.Contains(body, tt.step.Want):
				t.Fatalf("returned body %q", body)
			}
		})
	}
}

func TestStepDoSendsTheRequest(t *testing.T) {
	srv := newAnswerServer(t)
	tests := []struct {
		name string
		step testenv.Step
		want map[string]string
	}{
		{"no body, no token", testenv.Step{Method: "GET", Path: "/echo?limit=1"},
			map[string]string{"method": "GET", "query": "limit=1", "body": "", "content_type": "", "authorization": "", "x_test": ""}},
		{"JSON body, token, header", testenv.Step{Method: "POST", Path: "/echo", Body: `{"a":1}`, Token: "tok", Header: map[string]string{"X-Test": "yes"}},
			map[string]string{"method": "POST", "query": "", "body": `{"a":1}`, "content_type": "application/json", "authorization": "Bearer tok", "x_test": "yes"}},
		{"header overrides the content type", testenv.Step{Method: "PUT", Path: "/echo", Body: "a=1", Header: map[string]string{"Content-Type": "application/x-www-form-urlencoded"}},
			map[string]string{"method": "PUT", "query": "", "body": "a=1", "content_type": "application/x-www-form-urlencoded", "authorization": "", "x_test": ""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.step.Name, tt.step.Status = tt.name, 200
			var got map[string]string
			if err := json.Unmarshal([]byte(tt.step.Do(t, srv.URL)), &got); err != nil {
				t.Fatal(err)
			}
			for k, v := range tt.want {
				if got[k] != v {
					t.Errorf("%s = %q, want %q", k, got[k], v)
				}
			}
		})
	}
}
