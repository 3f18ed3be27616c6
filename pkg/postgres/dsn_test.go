package postgres

import "testing"

func TestWithBinaryParameters(t *testing.T) {
	tests := []struct{ dsn, want string }{
		{"postgres://u@h:5432/db?sslmode=disable", "postgres://u@h:5432/db?binary_parameters=yes&sslmode=disable"},
		{"postgres://u@h/db", "postgres://u@h/db?binary_parameters=yes"},
		{"postgres://u@h/db?binary_parameters=no&sslmode=disable", "postgres://u@h/db?binary_parameters=no&sslmode=disable"},
	}
	for _, tt := range tests {
		if got := withBinaryParameters(tt.dsn); got != tt.want {
			t.Errorf("withBinaryParameters(%q) = %q, want %q", tt.dsn, got, tt.want)
		}
	}
}
