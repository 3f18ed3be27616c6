package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
)

// TestRefusesKnownAdminPassword: the user service does not start with an admin
// password anyone can read (the compose file's default, given as the compose file
// gives it, in KITSHOP_ADMIN_PASSWORD) unless told it is a demo.
func TestRefusesKnownAdminPassword(t *testing.T) {
	tests := []struct {
		name, password string
		allowKnown     bool
		refused        bool
	}{
		{"compose's default", "change-me-admin", false, true},
		{"the demo overlay's, in capitals", " KITSHOP-DEMO-ADMIN ", false, true},
		{"compose's default in a demo", "change-me-admin", true, false},
		{"a password of one's own", "9f86d081884c7d65", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("KITSHOP_ADMIN_PASSWORD", tt.password)
			args := []string{
				"-admin-email", "admin@kitshop.local", "-key-file", filepath.Join(t.TempDir(), "keys.json"),
				// An address nothing can listen on: a start that gets past the password
				// check stops there, before it serves.
				"-http-addr", "127.0.0.1:99999", "-consul-addr", "", "-tls", "off",
			}
			if tt.allowKnown {
				args = append(args, "-allow-known-admin-password")
			}
			err := run(context.Background(), args)
			if err == nil {
				t.Fatal("started")
			}
			if refused := strings.Contains(err.Error(), "publicly known"); refused != tt.refused {
				t.Fatalf("err = %v; want refused %v", err, tt.refused)
			}
		})
	}
}
