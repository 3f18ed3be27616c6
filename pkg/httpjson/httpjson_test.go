package httpjson

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/kitshop/kitshop/pkg/errs"
)

func TestDecode(t *testing.T) {
	type body struct {
		Name  string `json:"name"`
		Count int    `json:"count"`
	}
	tests := []struct {
		name        string
		contentType string
		body        string
		wantCode    string
	}{
		{"ok", "application/json", `{"name":"a","count":2}`, ""},
		{"ok with charset", "application/json; charset=utf-8", `{"name":"a"}`, ""},
		{"no content type", "", `{"name":"a"}`, ""},
		{"trailing space", "application/json", "{\"name\":\"a\"}\n  ", ""},
		{"form", "application/x-www-form-urlencoded", `name=a`, "unsupported_content_type"},
		{"empty", "application/json", ``, "malformed_json"},
		{"syntax", "application/json", `{"name":`, "malformed_json"},
		{"not an object", "application/json", `[1,2]`, "invalid_field"},
		{"wrong type", "application/json", `{"count":"two"}`, "invalid_field"},
		{"unknown field", "application/json", `{"name":"a","admin":true}`, "unknown_field"},
		{"two values", "application/json", `{"name":"a"}{"name":"b"}`, "malformed_json"},
		{"garbage after", "application/json", `{"name":"a"} x`, "malformed_json"},
		{"too large", "application/json", `{"name":"` + strings.Repeat("a", MaxBody) + `"}`, "body_too_large"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("POST", "/", strings.NewReader(tt.body))
			if tt.contentType != "" {
				r.Header.Set("Content-Type", tt.contentType)
			}
			var v body
			err := Decode(httptest.NewRecorder(), r, &v)
			if tt.wantCode == "" {
				if err != nil || v.Name != "a" {
					t.Fatalf("err = %v, v = %+v", err, v)
				}
				return
			}
			var e *errs.Error
			if !errors.As(err, &e) || e.Code != tt.wantCode {
				t.Fatalf("err = %v, want code %s", err, tt.wantCode)
			}
			if tt.wantCode == "body_too_large" && e.Kind.Status() != http.StatusRequestEntityTooLarge {
				t.Fatalf("status %d", e.Kind.Status())
			}
		})
	}
}

func TestDecodeRequest(t *testing.T) {
	type body struct {
		Name string `json:"name"`
	}
	got, err := DecodeRequest[body](context.Background(), httptest.NewRequest("POST", "/", strings.NewReader(`{"name":"a"}`)))
	if err != nil || got.(body).Name != "a" {
		t.Errorf("DecodeRequest = %#v, %v; want {Name: a}", got, err)
	}
	_, err = DecodeRequest[body](context.Background(), httptest.NewRequest("POST", "/", strings.NewReader(`{"nom":"a"}`)))
	if errs.From(err).Code != "unknown_field" {
		t.Errorf("DecodeRequest with an unknown field: %v, want unknown_field", err)
	}
}
