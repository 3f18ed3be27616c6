package stack

import (
	"crypto/tls"
	"crypto/x509"
	"os"
	"testing"
)

// TestEdgeCertificate: a certificate is made once for its hosts, signed by the CA beside
// it, reused while it covers the hosts asked for, and made again when it does not.
func TestEdgeCertificate(t *testing.T) {
	dir := t.TempDir()
	steps := []struct {
		hosts    []string
		wantMade bool
	}{
		{[]string{"localhost", "127.0.0.1", "gateway"}, true},
		{[]string{"localhost", "127.0.0.1", "gateway"}, false},
		{[]string{"gateway"}, false},
		{[]string{"localhost", "shop.example.com"}, true},
	}
	for i, st := range steps {
		files, made, err := EdgeCertificate(dir, "gateway", st.hosts)
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		if made != st.wantMade {
			t.Fatalf("step %d (%v): made %v, want %v", i, st.hosts, made, st.wantMade)
		}
		pair, err := tls.LoadX509KeyPair(files.Cert, files.Key)
		if err != nil {
			t.Fatal(err)
		}
		leaf, _ := x509.ParseCertificate(pair.Certificate[0])
		caPEM, err := os.ReadFile(files.CA)
		if err != nil {
			t.Fatal(err)
		}
		roots := x509.NewCertPool()
		roots.AppendCertsFromPEM(caPEM)
		for _, h := range st.hosts {
			if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, DNSName: h}); err != nil {
				t.Fatalf("step %d: the certificate does not verify for %s: %v", i, h, err)
			}
		}
		info, _ := os.Stat(files.Key)
		if info.Mode().Perm() != 0o600 {
			t.Fatalf("key mode %v, want 0600", info.Mode().Perm())
		}
	}
}
