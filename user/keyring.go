package user

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/kitshop/kitshop/pkg/auth"
)

// keyringCheckEvery is how often a keyring looks whether another process (a rotation,
// another instance) changed its file.
const keyringCheckEvery = 5 * time.Second

// keyFile is the keyring's JSON form. The private key is the 32-byte Ed25519 seed.
type keyFile struct {
	Current struct {
		Kid        string    `json:"kid"`
		PrivateKey string    `json:"private_key"`
		CreatedAt  time.Time `json:"created_at"`
	} `json:"current"`
	Retired []retiredKey `json:"retired"`
}

// retiredKey is a former signing key, still published until every token it signed
// has expired.
type retiredKey struct {
	Kid       string    `json:"kid"`
	PublicKey string    `json:"public_key"` // base64url, as the JWK's x
	RetiredAt time.Time `json:"retired_at"`
}

// Keyring holds the user service's signing key and the public keys of the keys it
// retired. It lives in a file (0600) that every instance shares, so restarts and
// replicas sign and verify with the same keys; an empty path keeps a fresh key in
// memory only.
type Keyring struct {
	path     string
	issuer   string
	audience string
	ttl      time.Duration
	now      func() time.Time

	mu      sync.Mutex
	signer  *auth.Signer
	retired map[string]retiredPublic
	stat    fileStamp
	checked time.Time
}

type retiredPublic struct {
	key ed25519.PublicKey
	at  time.Time
}

type fileStamp struct {
	mod  time.Time
	size int64
}

// OpenKeyring loads the keyring at path, creating it with a fresh key when absent. Its
// signer issues tokens from issuer for audience valid for ttl, which is also how long a
// retired key stays published.
func OpenKeyring(path, issuer, audience string, ttl time.Duration, now func() time.Time) (*Keyring, error) {
	k := &Keyring{path: path, issuer: issuer, audience: audience, ttl: ttl, now: now}
	if path == "" {
		f, err := newKeyFile(now())
		if err != nil {
			return nil, err
		}
		return k, k.use(f)
	}
	if err := k.createIfAbsent(); err != nil {
		return nil, err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	return k, k.load()
}

func newKeyFile(now time.Time) (keyFile, error) {
	var f keyFile
	kid, key, err := auth.GenerateKey()
	if err != nil {
		return f, err
	}
	f.Current.Kid = kid
	f.Current.PrivateKey = base64.StdEncoding.EncodeToString(key.Seed())
	f.Current.CreatedAt = now.UTC()
	return f, nil
}

// createIfAbsent writes a new keyring unless the file exists. The file appears whole
// or not at all (hard link of a complete temporary file), so instances starting
// together agree on one key.
func (k *Keyring) createIfAbsent() error {
	if _, err := os.Stat(k.path); err == nil || !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	f, err := newKeyFile(k.now())
	if err != nil {
		return err
	}
	tmp, err := k.writeTemp(f)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	if err := os.Link(tmp, k.path); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("keyring %s: %w", k.path, err)
	}
	return nil
}

func (k *Keyring) writeTemp(f keyFile) (name string, err error) {
	dir := filepath.Dir(k.path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("keyring: %w", err)
	}
	data, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return "", err
	}
	// CreateTemp makes the file 0600: the private key is never readable by others.
	tmp, err := os.CreateTemp(dir, ".keyring-*")
	if err != nil {
		return "", fmt.Errorf("keyring: %w", err)
	}
	_, err = tmp.Write(append(data, '\n'))
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp.Name())
		return "", fmt.Errorf("keyring: %w", err)
	}
	return tmp.Name(), nil
}

// load reads the file; k.mu is held.
func (k *Keyring) load() error {
	info, err := os.Stat(k.path)
	if err != nil {
		return fmt.Errorf("keyring: %w", err)
	}
	if info.Mode().Perm()&0o077 != 0 {
		return fmt.Errorf("keyring %s: mode %v lets others read the signing key; chmod 600 it", k.path, info.Mode().Perm())
	}
	data, err := os.ReadFile(k.path)
	if err != nil {
		return fmt.Errorf("keyring: %w", err)
	}
	var f keyFile
	if err := json.Unmarshal(data, &f); err != nil {
		return fmt.Errorf("keyring %s: %w", k.path, err)
	}
	if err := k.use(f); err != nil {
		return fmt.Errorf("keyring %s: %w", k.path, err)
	}
	k.stat = fileStamp{mod: info.ModTime(), size: info.Size()}
	k.checked = k.now()
	return nil
}

// use makes f the keyring's content.
func (k *Keyring) use(f keyFile) error {
	seed, err := base64.StdEncoding.DecodeString(f.Current.PrivateKey)
	if err != nil || len(seed) != ed25519.SeedSize {
		return errors.New("current.private_key is not a base64 Ed25519 seed")
	}
	key := ed25519.NewKeyFromSeed(seed)
	kid := auth.KeyID(key.Public().(ed25519.PublicKey))
	if f.Current.Kid != kid {
		return fmt.Errorf("current.kid %q does not match its key (%s)", f.Current.Kid, kid)
	}
	retired := map[string]retiredPublic{}
	for _, r := range f.Retired {
		pub, err := auth.JWK{Kty: "OKP", Crv: "Ed25519", X: r.PublicKey, Kid: r.Kid}.PublicKey()
		if err != nil {
			return err
		}
		retired[r.Kid] = retiredPublic{key: pub, at: r.RetiredAt}
	}
	k.signer = auth.NewSigner(kid, key, k.issuer, k.audience, k.ttl)
	k.retired = retired
	return nil
}

// refresh reloads the file when it changed since it was read, looking at most every
// keyringCheckEvery; k.mu is held. A failed reload keeps the keys in use.
func (k *Keyring) refresh() error {
	if k.path == "" || k.now().Sub(k.checked) < keyringCheckEvery {
		return nil
	}
	k.checked = k.now()
	info, err := os.Stat(k.path)
	if err != nil {
		return fmt.Errorf("keyring: %w", err)
	}
	if (fileStamp{mod: info.ModTime(), size: info.Size()}) == k.stat {
		return nil
	}
	return k.load()
}

// published reports whether a key retired at t is still needed to verify tokens:
// tokens live ttl, verifiers allow auth.Leeway, and another instance may sign with the
// old key until it notices the rotation.
func (k *Keyring) published(t time.Time) bool {
	return k.now().Before(t.Add(k.ttl + auth.Leeway + keyringCheckEvery))
}

// Signer is the signer of the current key.
func (k *Keyring) Signer() (*auth.Signer, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	err := k.refresh()
	return k.signer, err
}

// JWKS is the public half of the current key and of the retired keys still published.
func (k *Keyring) JWKS() (auth.JWKS, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	err := k.refresh()
	set := auth.JWKS{Keys: []auth.JWK{auth.PublicJWK(k.signer.KeyID(), k.signer.PublicKey())}}
	for kid, r := range k.retired {
		if k.published(r.at) {
			set.Keys = append(set.Keys, auth.PublicJWK(kid, r.key))
		}
	}
	return set, err
}

// Key implements auth.KeySource over the same keys as JWKS.
func (k *Keyring) Key(_ context.Context, kid string) (ed25519.PublicKey, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := k.refresh(); err != nil {
		return nil, fmt.Errorf("%w: %v", auth.ErrKeysUnavailable, err)
	}
	if kid == k.signer.KeyID() {
		return k.signer.PublicKey(), nil
	}
	if r, ok := k.retired[kid]; ok && k.published(r.at) {
		return r.key, nil
	}
	return nil, auth.ErrUnknownKey
}

// Rotate makes a fresh key current and retires the current one, which stays published
// until the tokens it signed have expired; retired keys past that are dropped. Running
// instances sharing the file pick the change up within keyringCheckEvery.
func (k *Keyring) Rotate() (kid string, err error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.path != "" {
		if err := k.load(); err != nil {
			return "", err
		}
	}
	now := k.now().UTC()
	f, err := newKeyFile(now)
	if err != nil {
		return "", err
	}
	f.Retired = append(f.Retired, retiredKey{
		Kid:       k.signer.KeyID(),
		PublicKey: base64.RawURLEncoding.EncodeToString(k.signer.PublicKey()),
		RetiredAt: now,
	})
	for kid, r := range k.retired {
		if k.published(r.at) {
			f.Retired = append(f.Retired, retiredKey{Kid: kid, PublicKey: base64.RawURLEncoding.EncodeToString(r.key), RetiredAt: r.at})
		}
	}
	if k.path != "" {
		tmp, err := k.writeTemp(f)
		if err != nil {
			return "", err
		}
		if err := os.Rename(tmp, k.path); err != nil {
			os.Remove(tmp)
			return "", fmt.Errorf("keyring: %w", err)
		}
		return f.Current.Kid, k.load()
	}
	return f.Current.Kid, k.use(f)
}

// DefaultKeyFile is where the keyring lives unless configured: in the user's cache
// directory, so every instance started by the same user on this machine shares it.
func DefaultKeyFile() string {
	dir, err := os.UserCacheDir()
	if err != nil {
		dir = os.TempDir()
	}
	return filepath.Join(dir, "kitshop", "user-keys.json")
}
