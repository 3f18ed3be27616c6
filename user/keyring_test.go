package user

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kitshop/kitshop/pkg/auth"
)

func openKeyring(t *testing.T, path string, c *clock) *Keyring {
	t.Helper()
	k, err := OpenKeyring(path, auth.DefaultIssuer, auth.DefaultAudience, 15*time.Minute, c.now)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func kidsOf(t *testing.T, k *Keyring) []string {
	t.Helper()
	set, err := k.JWKS()
	if err != nil {
		t.Fatal(err)
	}
	var kids []string
	for _, jwk := range set.Keys {
		kids = append(kids, jwk.Kid)
	}
	return kids
}

func TestKeyringPersists(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "keys.json")
	c := &clock{t: time.Now()}
	first := openKeyring(t, path, c)
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := info.Mode().Perm(); perm != 0o600 {
		t.Fatalf("key file mode %v, want 0600", perm)
	}
	signer, _ := first.Signer()
	token, _, err := signer.Sign(auth.Caller{UserID: "u1", Role: auth.RoleCustomer}, c.now())
	if err != nil {
		t.Fatal(err)
	}

	// A restart (or a second instance) reads the same key: the token still verifies.
	second := openKeyring(t, path, c)
	v := auth.NewVerifier(second, auth.DefaultIssuer, auth.DefaultAudience, 15*time.Minute)
	if _, err := v.Verify(context.Background(), token); err != nil {
		t.Fatalf("token from before the restart: %v", err)
	}
	s2, _ := second.Signer()
	if s2.KeyID() != signer.KeyID() {
		t.Fatal("restart changed the signing key")
	}
}

func TestKeyringConcurrentFirstStart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys.json")
	c := &clock{t: t0}
	kids := make([]string, 8)
	var wg sync.WaitGroup
	for i := range kids {
		wg.Go(func() {
			k, err := OpenKeyring(path, auth.DefaultIssuer, auth.DefaultAudience, time.Minute, c.now)
			if err != nil {
				t.Error(err)
				return
			}
			s, _ := k.Signer()
			kids[i] = s.KeyID()
		})
	}
	wg.Wait()
	for _, kid := range kids {
		if kid != kids[0] {
			t.Fatalf("instances starting together disagree on the key: %v", kids)
		}
	}
	leftovers, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".keyring-*"))
	if len(leftovers) != 0 {
		t.Fatalf("temporary files left: %v", leftovers)
	}
}

func TestKeyringRefusesBadFiles(t *testing.T) {
	dir := t.TempDir()
	valid := filepath.Join(dir, "valid.json")
	openKeyring(t, valid, &clock{t: t0})
	data, _ := os.ReadFile(valid)
	var f keyFile
	if err := json.Unmarshal(data, &f); err != nil {
		t.Fatal(err)
	}
	write := func(name string, mode os.FileMode, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := map[string]string{
		"world readable": write("open.json", 0o644, string(data)),
		"not JSON":       write("garbage.json", 0o600, "{"),
		"kid mismatch":   write("kid.json", 0o600, strings.Replace(string(data), f.Current.Kid, "someone-else", 1)),
		"short seed":     write("seed.json", 0o600, strings.Replace(string(data), f.Current.PrivateKey, "AAAA", 1)),
	}
	for name, path := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := OpenKeyring(path, auth.DefaultIssuer, auth.DefaultAudience, time.Minute, time.Now)
			if err == nil {
				t.Fatal("opened")
			}
			if strings.Contains(err.Error(), f.Current.PrivateKey) {
				t.Fatal("error message contains the private key")
			}
		})
	}
}

func TestKeyringRotation(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys.json")
	c := &clock{t: time.Now()}
	serving := openKeyring(t, path, c) // a running instance
	oldSigner, _ := serving.Signer()
	oldToken, _, err := oldSigner.Sign(auth.Caller{UserID: "u1", Role: auth.RoleCustomer}, c.now())
	if err != nil {
		t.Fatal(err)
	}

	// An operator rotates with another process (user -rotate-key).
	newKid, err := openKeyring(t, path, c).Rotate()
	if err != nil {
		t.Fatal(err)
	}
	if newKid == oldSigner.KeyID() {
		t.Fatal("rotation kept the key")
	}
	// The running instance notices within keyringCheckEvery.
	c.advance(keyringCheckEvery)
	s, _ := serving.Signer()
	if s.KeyID() != newKid {
		t.Fatalf("running instance signs with %s, want the rotated %s", s.KeyID(), newKid)
	}
	if got := kidsOf(t, serving); len(got) != 2 || got[0] != newKid || got[1] != oldSigner.KeyID() {
		t.Fatalf("published kids = %v, want [new old]", got)
	}
	v := auth.NewVerifier(serving, auth.DefaultIssuer, auth.DefaultAudience, 15*time.Minute)
	if _, err := v.Verify(context.Background(), oldToken); err != nil {
		t.Fatalf("token of the retired key before it expires: %v", err)
	}

	// Once every token of the old key has expired, the old key is no longer published.
	c.advance(15*time.Minute + auth.Leeway + keyringCheckEvery)
	if got := kidsOf(t, serving); len(got) != 1 || got[0] != newKid {
		t.Fatalf("published kids after expiry = %v, want [new]", got)
	}
	if _, err := serving.Key(context.Background(), oldSigner.KeyID()); !errors.Is(err, auth.ErrUnknownKey) {
		t.Fatalf("retired key after expiry: err = %v", err)
	}

	// A second rotation drops the expired key from the file.
	if _, err := serving.Rotate(); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(path)
	var f keyFile
	if err := json.Unmarshal(data, &f); err != nil {
		t.Fatal(err)
	}
	if len(f.Retired) != 1 || f.Retired[0].Kid != newKid {
		t.Fatalf("retired keys in file = %+v, want only %s", f.Retired, newKid)
	}
}

func TestKeyringInMemory(t *testing.T) {
	k := openKeyring(t, "", &clock{t: t0})
	s, err := k.Signer()
	if err != nil || s == nil {
		t.Fatalf("Signer = %v, %v", s, err)
	}
	kid, err := k.Rotate()
	if err != nil {
		t.Fatal(err)
	}
	if got := kidsOf(t, k); len(got) != 2 || got[0] != kid {
		t.Fatalf("kids after in-memory rotation = %v", got)
	}
}
