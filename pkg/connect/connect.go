// Package connect gives a kitshop instance its identity and its peers' from Consul
// Connect's built-in CA: the instance's leaf certificate and the CA roots come from the
// local agent and are kept fresh with blocking queries (a rotated root or leaf is used
// by the next handshake, without a restart); servers require a client certificate
// signed by those roots and authorise each caller's SPIFFE ID against Consul's
// intentions.
package connect

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	consul "github.com/hashicorp/consul/api"
)

// Identity is one service's certificate and trust roots, refreshed in the background.
type Identity struct {
	service string
	agent   *consul.Agent
	logger  log.Logger

	mu         sync.RWMutex
	leaf       *tls.Certificate
	leafSerial string
	roots      *x509.CertPool
	// previous roots stay trusted until previousUntil: the leaves of peers (and this
	// instance's own) are reissued a moment after the roots change, and a dev agent
	// that restarted has a new CA altogether.
	previous      *x509.CertPool
	previousUntil time.Time
	// generation counts the changes of roots and leaf. A TLS session records the
	// generation it was made in and is resumed only in the same one: a resumed
	// session carries the certificates of its first handshake, which a CA change
	// leaves untrusted, so after a change both sides shake hands in full again.
	generation uint64

	stop context.CancelFunc
	done sync.WaitGroup
}

// rootsGrace is how long replaced roots are still trusted.
const rootsGrace = 30 * time.Second

// retryAfter is the pause after a failed blocking query (an agent restarting).
const retryAfter = time.Second

// New fetches service's leaf certificate and the CA roots from the agent, waiting at
// most until ctx is done, then keeps both fresh until Close.
func New(ctx context.Context, c *consul.Client, service string, logger log.Logger) (*Identity, error) {
	id := &Identity{service: service, agent: c.Agent(), logger: logger}
	rootsIdx, err := id.fetchRoots(ctx, 0)
	if err != nil {
		return nil, err
	}
	leafIdx, err := id.fetchLeaf(ctx, 0)
	if err != nil {
		return nil, err
	}
	watchCtx, stop := context.WithCancel(context.Background())
	id.stop = stop
	id.done.Add(2)
	go id.watch(watchCtx, "roots", rootsIdx, id.fetchRoots)
	go id.watch(watchCtx, "leaf", leafIdx, id.fetchLeaf)
	return id, nil
}

// Service is the service this identity belongs to.
func (id *Identity) Service() string { return id.service }

// Close stops the refreshing.
func (id *Identity) Close() error {
	id.stop()
	id.done.Wait()
	return nil
}

// watch repeats a blocking query for as long as ctx lasts: each answer comes when the
// agent has a newer certificate (a renewal before expiry, or a CA rotation).
func (id *Identity) watch(ctx context.Context, what string, idx uint64, fetch func(context.Context, uint64) (uint64, error)) {
	defer id.done.Done()
	for ctx.Err() == nil {
		next, err := fetch(ctx, idx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			_ = level.Warn(id.logger).Log("msg", "connect: refreshing the "+what+" failed; the current one stays in use", "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(retryAfter):
			}
			// An agent that restarted starts its indexes again from scratch.
			idx = 0
			continue
		}
		idx = next
	}
}

func (id *Identity) fetchRoots(ctx context.Context, idx uint64) (uint64, error) {
	list, meta, err := id.agent.ConnectCARoots((&consul.QueryOptions{WaitIndex: idx, WaitTime: 5 * time.Minute}).WithContext(ctx))
	if err != nil {
		return 0, fmt.Errorf("connect: CA roots: %w", err)
	}
	if meta.LastIndex == idx {
		return idx, nil
	}
	pool := x509.NewCertPool()
	for _, r := range list.Roots {
		if !pool.AppendCertsFromPEM([]byte(r.RootCertPEM)) {
			return 0, fmt.Errorf("connect: CA root %s is not PEM", r.ID)
		}
	}
	if id.setRoots(pool) {
		_ = level.Info(id.logger).Log("msg", "connect: CA roots updated", "active_root", list.ActiveRootID, "roots", len(list.Roots))
	}
	return meta.LastIndex, nil
}

// setRoots puts pool in use and reports whether it replaced other roots (which stay
// trusted for rootsGrace).
func (id *Identity) setRoots(pool *x509.CertPool) bool {
	id.mu.Lock()
	defer id.mu.Unlock()
	if id.roots == nil {
		id.roots = pool
		return false
	}
	if id.roots.Equal(pool) {
		return false
	}
	id.previous, id.previousUntil = id.roots, time.Now().Add(rootsGrace)
	id.roots = pool
	id.generation++
	return true
}

func (id *Identity) fetchLeaf(ctx context.Context, idx uint64) (uint64, error) {
	leaf, meta, err := id.agent.ConnectCALeaf(id.service, (&consul.QueryOptions{WaitIndex: idx, WaitTime: 5 * time.Minute}).WithContext(ctx))
	if err != nil {
		return 0, fmt.Errorf("connect: leaf certificate of %s: %w", id.service, err)
	}
	if meta.LastIndex == idx {
		return idx, nil
	}
	cert, err := tls.X509KeyPair([]byte(leaf.CertPEM), []byte(leaf.PrivateKeyPEM))
	if err != nil {
		return 0, fmt.Errorf("connect: leaf certificate of %s: %w", id.service, err)
	}
	if id.setLeaf(&cert, leaf.SerialNumber) {
		_ = level.Info(id.logger).Log("msg", "connect: leaf certificate rotated", "serial", leaf.SerialNumber, "valid_before", leaf.ValidBefore.Format(time.RFC3339))
	}
	return meta.LastIndex, nil
}

// setLeaf puts cert in use and reports whether it replaced another. Certificates are
// compared, not serial numbers: a dev agent that restarted has a new CA that counts
// its serials from the start again, and can give an instance the serial it had.
func (id *Identity) setLeaf(cert *tls.Certificate, serial string) bool {
	id.mu.Lock()
	defer id.mu.Unlock()
	changed := id.leaf != nil && !bytes.Equal(id.leaf.Certificate[0], cert.Certificate[0])
	id.leaf, id.leafSerial = cert, serial
	if changed {
		id.generation++
	}
	return changed
}

func (id *Identity) currentGeneration() uint64 {
	id.mu.RLock()
	defer id.mu.RUnlock()
	return id.generation
}

// LeafSerial is the serial number of the leaf certificate in use.
func (id *Identity) LeafSerial() string {
	id.mu.RLock()
	defer id.mu.RUnlock()
	return id.leafSerial
}

func (id *Identity) currentLeaf() *tls.Certificate {
	id.mu.RLock()
	defer id.mu.RUnlock()
	return id.leaf
}

// pools are the roots to verify a peer against: the current ones, then the replaced
// ones while their grace lasts.
func (id *Identity) pools() []*x509.CertPool {
	id.mu.RLock()
	defer id.mu.RUnlock()
	if id.previous != nil && time.Now().Before(id.previousUntil) {
		return []*x509.CertPool{id.roots, id.previous}
	}
	return []*x509.CertPool{id.roots}
}

// ServerTLS is the TLS configuration of the instance's listener: it presents the
// current leaf, and verifies a client certificate when one is sent. A caller without
// one still completes the handshake so the health check (which Consul makes without
// a certificate) works; Authorize refuses such a caller everywhere else.
//
// Sessions are resumed (a resumed handshake costs a fraction of a full one, and a
// crowd of new connections is what a stack that has just started meets), and the
// check is VerifyConnection, which runs on resumed sessions too: a client certificate
// of a replaced CA stops being accepted when the roots' grace ends, not when the
// session ticket expires.
func (id *Identity) ServerTLS() *tls.Config {
	cfg := &tls.Config{
		MinVersion: tls.VersionTLS12,
		ClientAuth: tls.RequestClientCert,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return id.currentLeaf(), nil
		},
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return nil
			}
			_, err := id.verify(rawCerts(cs), x509.ExtKeyUsageClientAuth)
			return err
		},
	}
	cfg.WrapSession = func(cs tls.ConnectionState, ss *tls.SessionState) ([]byte, error) {
		ss.Extra = append(ss.Extra, generationTag(id.currentGeneration()))
		return cfg.EncryptTicket(cs, ss)
	}
	// A ticket of an earlier generation is not resumed (nil, nil): the handshake goes
	// on in full, and the caller presents the leaf it has now.
	cfg.UnwrapSession = func(ticket []byte, cs tls.ConnectionState) (*tls.SessionState, error) {
		ss, err := cfg.DecryptTicket(ticket, cs)
		if err != nil || ss == nil || !slices.ContainsFunc(ss.Extra, isGeneration(id.currentGeneration())) {
			return nil, err
		}
		return ss, nil
	}
	return cfg
}

func rawCerts(cs tls.ConnectionState) [][]byte {
	raw := make([][]byte, len(cs.PeerCertificates))
	for i, c := range cs.PeerCertificates {
		raw[i] = c.Raw
	}
	return raw
}

// ClientTLS is the TLS configuration of calls to service: it presents the current
// leaf and accepts a server whose certificate the Connect CA signed for that service
// (for any service when service is empty). The CA's roots are this cluster's alone,
// so they stand for the trust domain. Host names are not checked: instances are
// reached at addresses, and their names are SPIFFE IDs.
func (id *Identity) ClientTLS(service string) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		// Verification is VerifyConnection's, against the Connect roots of the moment.
		InsecureSkipVerify: true,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return id.currentLeaf(), nil
		},
		ClientSessionCache: &generationCache{id: id, sessions: tls.NewLRUClientSessionCache(clientSessions)},
		VerifyConnection: func(cs tls.ConnectionState) error {
			peer, err := id.verify(rawCerts(cs), x509.ExtKeyUsageServerAuth)
			if err == nil && service != "" && peer != service {
				err = fmt.Errorf("connect: the server is %s, not %s", peer, service)
			}
			return err
		},
	}
}

// clientSessions is how many TLS sessions one ClientTLS configuration keeps.
const clientSessions = 1024

// generationCache keeps a caller's TLS sessions under the identity's generation, so
// that after a change of roots or leaf none is resumed (see Identity.generation).
type generationCache struct {
	id       *Identity
	sessions tls.ClientSessionCache
}

func (c *generationCache) key(sessionKey string) string {
	return strconv.FormatUint(c.id.currentGeneration(), 10) + " " + sessionKey
}

func (c *generationCache) Get(sessionKey string) (*tls.ClientSessionState, bool) {
	return c.sessions.Get(c.key(sessionKey))
}

func (c *generationCache) Put(sessionKey string, cs *tls.ClientSessionState) {
	c.sessions.Put(c.key(sessionKey), cs)
}

// generationTag is how a server's session ticket records its generation.
func generationTag(gen uint64) []byte {
	return []byte("kitshop-connect-generation " + strconv.FormatUint(gen, 10))
}

func isGeneration(gen uint64) func([]byte) bool {
	tag := generationTag(gen)
	return func(extra []byte) bool { return bytes.Equal(extra, tag) }
}

// verify checks a peer's chain against the current roots and returns its service.
func (id *Identity) verify(raw [][]byte, usage x509.ExtKeyUsage) (string, error) {
	if len(raw) == 0 {
		return "", errors.New("connect: the peer sent no certificate")
	}
	certs := make([]*x509.Certificate, len(raw))
	for i, b := range raw {
		c, err := x509.ParseCertificate(b)
		if err != nil {
			return "", fmt.Errorf("connect: peer certificate: %w", err)
		}
		certs[i] = c
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	var err error
	for _, roots := range id.pools() {
		if _, err = certs[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{usage}}); err == nil {
			break
		}
	}
	if err != nil {
		return "", fmt.Errorf("connect: peer certificate not signed by the Connect CA: %w", err)
	}
	peer, err := PeerFromCert(certs[0])
	if err != nil {
		return "", err
	}
	return peer.Service, nil
}

// Peer is the identity a certificate carries.
type Peer struct {
	URI         string // spiffe://<trust domain>/ns/<ns>/dc/<dc>/svc/<service>
	TrustDomain string
	Service     string
	Serial      string // hex, colon separated, as Consul writes it
}

// PeerFromCert reads the SPIFFE service ID of a Connect leaf.
func PeerFromCert(c *x509.Certificate) (Peer, error) {
	for _, u := range c.URIs {
		if svc, ok := serviceOf(u); ok {
			return Peer{URI: u.String(), TrustDomain: u.Host, Service: svc, Serial: serialHex(c)}, nil
		}
	}
	return Peer{}, errors.New("connect: the peer certificate carries no SPIFFE service ID")
}

func serviceOf(u *url.URL) (string, bool) {
	parts := strings.Split(strings.Trim(u.Path, "/"), "/")
	// ns/<ns>/dc/<dc>/svc/<service>, optionally preceded by ap/<partition>.
	if u.Scheme != "spiffe" || len(parts) < 6 || parts[len(parts)-2] != "svc" {
		return "", false
	}
	return parts[len(parts)-1], true
}

func serialHex(c *x509.Certificate) string {
	b := c.SerialNumber.Bytes()
	hex := make([]string, len(b))
	for i, x := range b {
		hex[i] = fmt.Sprintf("%02x", x)
	}
	return strings.Join(hex, ":")
}
