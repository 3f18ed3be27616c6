package app

import "testing"

func TestListenReusePort(t *testing.T) {
	tests := []struct {
		name        string
		first, then bool // -reuse-port of the first listener and of the second
		shared      bool // the second listens on the first one's port
	}{
		{"both reuse", true, true, true},
		{"neither", false, false, false},
		{"only the second", false, true, false},
		{"only the first", true, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			first, err := listen("127.0.0.1:0", tt.first)
			if err != nil {
				t.Fatal(err)
			}
			defer first.Close()
			second, err := listen(first.Addr().String(), tt.then)
			if err == nil {
				defer second.Close()
			}
			if shared := err == nil; shared != tt.shared {
				t.Fatalf("second listener on %s: err %v, want shared %v", first.Addr(), err, tt.shared)
			}
		})
	}
}
