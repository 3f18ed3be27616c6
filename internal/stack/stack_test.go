package stack

import (
	"os"
	"path/filepath"
	"testing"
)

func TestCredentials(t *testing.T) {
	const (
		kept      = "0123456789abcdef01234567"
		generated = "(the generated password)"
	)
	tests := []struct {
		name          string
		options       Options
		keptPassword  string // in <state>/admin-password before the run
		wantEmail     string
		wantPassword  string // empty: a generated one
		wantKeptAfter string // in <state>/admin-password after the run; empty: no file
	}{
		{name: "defaults, first run", wantEmail: DefaultAdminEmail, wantKeptAfter: generated},
		{name: "defaults, later run", keptPassword: kept, wantEmail: DefaultAdminEmail, wantPassword: kept, wantKeptAfter: kept},
		{name: "given account", options: Options{AdminEmail: "ops@shop.example", AdminPassword: "a-long-chosen-secret"},
			wantEmail: "ops@shop.example", wantPassword: "a-long-chosen-secret"},
		{name: "given password is not kept", options: Options{AdminPassword: "a-long-chosen-secret"}, keptPassword: kept,
			wantEmail: DefaultAdminEmail, wantPassword: "a-long-chosen-secret", wantKeptAfter: kept},
		{name: "given email, kept password", options: Options{AdminEmail: "ops@shop.example"}, keptPassword: kept,
			wantEmail: "ops@shop.example", wantPassword: kept, wantKeptAfter: kept},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.options.State = t.TempDir()
			path := filepath.Join(tt.options.State, "admin-password")
			if tt.keptPassword != "" {
				if err := os.WriteFile(path, []byte(tt.keptPassword+"\n"), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			s := &Stack{Options: tt.options}
			if err := s.credentials(); err != nil {
				t.Fatal(err)
			}
			if s.AdminEmail != tt.wantEmail {
				t.Errorf("email %q, want %q", s.AdminEmail, tt.wantEmail)
			}
			switch {
			case tt.wantPassword != "" && s.AdminPassword != tt.wantPassword:
				t.Errorf("password %q, want %q", s.AdminPassword, tt.wantPassword)
			case tt.wantPassword == "" && len(s.AdminPassword) < 16:
				t.Errorf("generated password %q is too short", s.AdminPassword)
			}
			want := tt.wantKeptAfter
			if want == generated {
				want = s.AdminPassword
			}
			b, err := os.ReadFile(path)
			switch {
			case want == "" && err == nil:
				t.Errorf("the state folder keeps %q, want no password kept", b)
			case want != "" && string(b) != want+"\n":
				t.Errorf("the state folder keeps %q (%v), want %q", b, err, want)
			}
		})
	}
}
