package notification

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"testing"

	"github.com/go-kit/log"

	"github.com/kitshop/kitshop/pkg/auth"
	"github.com/kitshop/kitshop/pkg/observe"
)

// tokens is a fake Verifier: a token is valid when it names a caller here.
type tokens map[string]auth.Caller

func (v tokens) Verify(_ context.Context, token string) (auth.Caller, error) {
	if c, ok := v[token]; ok {
		return c, nil
	}
	return auth.Caller{}, auth.ErrInvalidToken
}

func TestHTTPListNotifications(t *testing.T) {
	s := NewService(NewMemoryStore(), RecordOnly{}, fixedNow)
	ctx := context.Background()
	for _, user := range []string{"u-1", "u-2"} {
		d := orderData()
		d.UserID = user
		if _, err := s.HandleEvent(ctx, event(t, EventOrderConfirmed, d)); err != nil {
			t.Fatal(err)
		}
	}
	v := tokens{"alice-token": {UserID: "u-1", Role: auth.RoleCustomer}, "carol-token": {UserID: "u-3"}}
	obs := observe.Observer{Logger: log.NewNopLogger(), Metrics: observe.NewMetrics("notification")}
	h := MakeHTTPHandler(MakeServerEndpoints(s, obs, v), nil)

	tests := []struct {
		name, method, path, token string
		status                    int
		code                      string
		count                     int
	}{
		{"own only", "GET", "/v1/notifications", "alice-token", 200, "", 1},
		{"none yet", "GET", "/v1/notifications", "carol-token", 200, "", 0},
		{"no token", "GET", "/v1/notifications", "", 401, "missing_token", 0},
		{"bad token", "GET", "/v1/notifications", "forged", 401, "invalid_token", 0},
		{"wrong method", "POST", "/v1/notifications", "alice-token", 405, "method_not_allowed", 0},
		{"unknown path", "GET", "/v1/notification", "alice-token", 404, "not_found", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest(tt.method, tt.path, nil)
			if tt.token != "" {
				req.Header.Set("Authorization", "Bearer "+tt.token)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tt.status {
				t.Fatalf("status %d, want %d: %s", rec.Code, tt.status, rec.Body)
			}
			if tt.code != "" {
				var body struct{ Error struct{ Code string } }
				if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || body.Error.Code != tt.code {
					t.Fatalf("body %s, want code %s", rec.Body, tt.code)
				}
				return
			}
			var body struct {
				Notifications []map[string]any `json:"notifications"`
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || body.Notifications == nil {
				t.Fatalf("body %s: %v", rec.Body, err)
			}
			if len(body.Notifications) != tt.count {
				t.Fatalf("%d notifications, want %d", len(body.Notifications), tt.count)
			}
			if tt.count > 0 {
				n := body.Notifications[0]
				if n["order_id"] != "ord-1" || n["type"] != TypeOrderConfirmed || n["to"] != "alice@example.com" ||
					n["subject"] != "Your kitshop order ord-1 is confirmed" || n["sent_at"] != "2026-11-25T12:00:00Z" || n["id"] == "" {
					t.Fatalf("notification %v", n)
				}
				if len(n) != 6 {
					t.Fatalf("notification has fields %v, want id, order_id, type, to, subject, sent_at", n)
				}
			}
		})
	}
}
