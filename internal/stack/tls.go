package stack

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/kitshop/kitshop/pkg/connect"
)

// Intentions are who may call whom: the gateway the public services, order the
// reservations and charges, and every service that verifies tokens the user service's
// keys. Anything else is denied. kitshop up writes them to Consul.
var Intentions = connect.Intentions{
	"user":         {"gateway", "inventory", "order", "notification"},
	"inventory":    {"gateway", "order"},
	"payment":      {"order"},
	"order":        {"gateway"},
	"notification": {"gateway"},
}

// tlsOn reports whether the stack runs with mTLS between services and HTTPS at the edge.
func (o Options) tlsOn() bool { return o.TLS != "off" }

// applyIntentions writes Intentions to the stack's agent (a restarted dev agent has
// forgotten them).
func (s *Stack) applyIntentions() error {
	if !s.Options.tlsOn() {
		return nil
	}
	c, err := s.Consul()
	if err != nil {
		return err
	}
	// A dev agent that has just started answers 500 "Intentions are read only while
	// being upgraded to config entries" for a moment: keep trying for a while.
	deadline := time.Now().Add(intentionsWait)
	for {
		err := Intentions.Apply(c)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(200 * time.Millisecond)
	}
	s.logf("Consul: intentions written (only the listed callers may reach each service)")
	return nil
}

// intentionsWait is how long a new agent may refuse the intentions before that is an
// error.
const intentionsWait = 15 * time.Second

// edgeCertificate returns the gateway's certificate and key files: the ones given, or
// a certificate for localhost signed by a CA of the state folder, made once, so a user
// can trust that CA (<state>/tls/ca.pem) in a browser or pass it to curl --cacert.
func (s *Stack) edgeCertificate() (cert, key string, err error) {
	if s.Options.TLSCert != "" {
		return s.Options.TLSCert, s.Options.TLSKey, nil
	}
	files, made, err := EdgeCertificate(filepath.Join(s.Options.State, "tls"), "localhost", []string{"localhost", "127.0.0.1", "::1"})
	if err != nil {
		return "", "", err
	}
	s.CACert = files.CA
	if made {
		s.logf("HTTPS: made a local CA for the demo; trust %s to browse the gateway over HTTPS without a warning", s.CACert)
	}
	return files.Cert, files.Key, nil
}

// EdgeFiles are a certificate, its key and the CA that signed it.
type EdgeFiles struct{ Cert, Key, CA string }

// EdgeCertificate returns the files <name>.pem, <name>-key.pem and ca.pem in dir: a
// certificate for hosts (DNS names or IP addresses) signed by a demo CA. They are made
// (made is true) unless a certificate made earlier there covers every host and still
// has a month to live. The CA's key is not kept: the CA signs this one certificate.
func EdgeCertificate(dir, name string, hosts []string) (files EdgeFiles, made bool, err error) {
	files = EdgeFiles{
		Cert: filepath.Join(dir, name+".pem"),
		Key:  filepath.Join(dir, name+"-key.pem"),
		CA:   filepath.Join(dir, "ca.pem"),
	}
	if usable(files.Cert, files.Key, hosts) {
		return files, false, nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return files, false, err
	}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return files, false, err
	}
	now := time.Now()
	caSerial, err := serial()
	if err != nil {
		return files, false, err
	}
	leafSerial, err := serial()
	if err != nil {
		return files, false, err
	}
	caTmpl := &x509.Certificate{
		SerialNumber: caSerial, Subject: pkix.Name{CommonName: "kitshop local demo CA", Organization: []string{"kitshop"}},
		NotBefore: now.Add(-time.Hour), NotAfter: now.AddDate(5, 0, 0),
		IsCA: true, BasicConstraintsValid: true, MaxPathLenZero: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return files, false, err
	}
	ca, _ := x509.ParseCertificate(caDER)
	leafKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return files, false, err
	}
	leafTmpl := &x509.Certificate{
		SerialNumber: leafSerial, Subject: pkix.Name{CommonName: hosts[0]},
		NotBefore: now.Add(-time.Hour), NotAfter: now.AddDate(1, 0, 0),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			leafTmpl.IPAddresses = append(leafTmpl.IPAddresses, ip)
		} else {
			leafTmpl.DNSNames = append(leafTmpl.DNSNames, h)
		}
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, ca, &leafKey.PublicKey, caKey)
	if err != nil {
		return files, false, err
	}
	keyDER, err := x509.MarshalECPrivateKey(leafKey)
	if err != nil {
		return files, false, err
	}
	for path, block := range map[string]*pem.Block{
		files.CA:   {Type: "CERTIFICATE", Bytes: caDER},
		files.Cert: {Type: "CERTIFICATE", Bytes: leafDER},
		files.Key:  {Type: "EC PRIVATE KEY", Bytes: keyDER},
	} {
		if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
			return files, false, err
		}
	}
	return files, true, nil
}

// usable reports whether a certificate made earlier covers hosts and still has a month
// to live.
func usable(certFile, keyFile string, hosts []string) bool {
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return false
	}
	c, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil || time.Until(c.NotAfter) < 30*24*time.Hour {
		return false
	}
	for _, h := range hosts {
		if c.VerifyHostname(h) != nil {
			return false
		}
	}
	return true
}

func serial() (*big.Int, error) {
	return rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
}

// setHTTPS derives the HTTPS address of the gateway, which serves both on one port.
func (s *Stack) setHTTPS() {
	s.GatewayHTTPS = ""
	if s.Options.tlsOn() {
		s.GatewayHTTPS = "https://" + strings.TrimPrefix(s.GatewayURL, "http://")
	}
}
