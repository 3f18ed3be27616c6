package main

import (
	"flag"
	"testing"

	"github.com/kitshop/kitshop/internal/stack"
)

func TestAdminAccountFromTheEnvironment(t *testing.T) {
	tests := []struct {
		name         string
		env          map[string]string
		args         []string
		wantEmail    string
		wantPassword string
	}{
		{name: "nothing set", wantEmail: stack.DefaultAdminEmail},
		{name: "environment",
			env:       map[string]string{"KITSHOP_ADMIN_EMAIL": "ops@shop.example", "KITSHOP_ADMIN_PASSWORD": "a-long-chosen-secret"},
			wantEmail: "ops@shop.example", wantPassword: "a-long-chosen-secret"},
		{name: "flags win over the environment",
			env:       map[string]string{"KITSHOP_ADMIN_EMAIL": "ops@shop.example", "KITSHOP_ADMIN_PASSWORD": "a-long-chosen-secret"},
			args:      []string{"-admin-email", "root@shop.example", "-admin-password", "another-long-secret"},
			wantEmail: "root@shop.example", wantPassword: "another-long-secret"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, k := range []string{"KITSHOP_ADMIN_EMAIL", "KITSHOP_ADMIN_PASSWORD"} {
				t.Setenv(k, tt.env[k])
			}
			fs := flag.NewFlagSet("kitshop up", flag.ContinueOnError)
			o := stack.Options{Root: t.TempDir()}
			register(fs, &o)
			if err := fs.Parse(tt.args); err != nil {
				t.Fatal(err)
			}
			if err := resolve(&o); err != nil {
				t.Fatal(err)
			}
			if o.AdminEmail != tt.wantEmail || o.AdminPassword != tt.wantPassword {
				t.Errorf("admin %q / %q, want %q / %q", o.AdminEmail, o.AdminPassword, tt.wantEmail, tt.wantPassword)
			}
		})
	}
}
