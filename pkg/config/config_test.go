package config

import (
	"flag"
	"io"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		env      map[string]string
		wantAddr string
		wantTTL  time.Duration
		wantErr  bool
	}{
		{name: "defaults", wantAddr: ":8082", wantTTL: time.Minute},
		{name: "env fills", env: map[string]string{"KITSHOP_HTTP_ADDR": ":9000", "KITSHOP_RESERVATION_TTL": "5s"}, wantAddr: ":9000", wantTTL: 5 * time.Second},
		{name: "flag beats env", args: []string{"-http-addr", ":1"}, env: map[string]string{"KITSHOP_HTTP_ADDR": ":9000"}, wantAddr: ":1", wantTTL: time.Minute},
		{name: "bad env value", env: map[string]string{"KITSHOP_RESERVATION_TTL": "soon"}, wantErr: true},
		{name: "bad flag", args: []string{"-nope"}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := flag.NewFlagSet("test", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			addr := fs.String("http-addr", ":8082", "")
			ttl := fs.Duration("reservation-ttl", time.Minute, "")
			err := Parse(fs, tt.args, func(k string) string { return tt.env[k] })
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if tt.wantErr {
				return
			}
			if *addr != tt.wantAddr || *ttl != tt.wantTTL {
				t.Errorf("got %q %v, want %q %v", *addr, *ttl, tt.wantAddr, tt.wantTTL)
			}
		})
	}
}
