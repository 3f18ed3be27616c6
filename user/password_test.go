package user

import (
	"context"
	"errors"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"
)

// fastArgon2 keeps tests quick; the cost parameters do not change the logic.
var fastArgon2 = Argon2Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}

// newTestPasswords hashes as many passwords at once as there are cores, as the service
// does by default.
func newTestPasswords(t testing.TB, p Argon2Params) *Passwords {
	t.Helper()
	pw, err := NewPasswords(p, runtime.GOMAXPROCS(0))
	if err != nil {
		t.Fatal(err)
	}
	return pw
}

func TestPasswordHashFormat(t *testing.T) {
	pw := newTestPasswords(t, DefaultArgon2)
	ctx := context.Background()
	hash, err := pw.Hash(ctx, "correct horse")
	if err != nil {
		t.Fatal(err)
	}
	// 16-byte salt → 22 base64 chars; 32-byte key → 43.
	if !regexp.MustCompile(`^\$argon2id\$v=19\$m=19456,t=2,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$`).MatchString(hash) {
		t.Fatalf("hash %q is not a PHC argon2id string with the OWASP parameters", hash)
	}
	again, _ := pw.Hash(ctx, "correct horse")
	if again == hash {
		t.Fatal("two hashes of one password are equal: salt not random")
	}
	ok, weaker, err := pw.Check(ctx, "correct horse", hash)
	if err != nil || !ok || weaker {
		t.Fatalf("Check right password = %v, %v, %v", ok, weaker, err)
	}
	ok, _, err = pw.Check(ctx, "correct horsE", hash)
	if err != nil || ok {
		t.Fatalf("Check wrong password = %v, %v", ok, err)
	}
}

func TestPasswordParametersTravelWithTheHash(t *testing.T) {
	ctx := context.Background()
	old := newTestPasswords(t, fastArgon2)
	hash, err := old.Hash(ctx, "correct horse")
	if err != nil {
		t.Fatal(err)
	}
	raised := fastArgon2
	raised.Memory, raised.Time = 128, 2
	current := newTestPasswords(t, raised)
	ok, weaker, err := current.Check(ctx, "correct horse", hash)
	if err != nil || !ok || !weaker {
		t.Fatalf("old hash under raised parameters: ok %v weaker %v err %v; want true true nil", ok, weaker, err)
	}
	newHash, _ := current.Hash(ctx, "correct horse")
	if !strings.Contains(newHash, "$m=128,t=2,p=1$") {
		t.Fatalf("new hash %q lacks the raised parameters", newHash)
	}
}

func TestPasswordMalformedHashes(t *testing.T) {
	pw := newTestPasswords(t, fastArgon2)
	good, _ := pw.Hash(context.Background(), "correct horse")
	parts := strings.Split(good, "$")
	for name, hash := range map[string]string{
		"empty":          "",
		"bcrypt":         "$2a$10$abcdefghijklmnopqrstuuABCDEFGHIJKLMNOPQRSTUVWXYZ01234",
		"argon2i":        strings.Replace(good, "argon2id", "argon2i", 1),
		"other version":  strings.Replace(good, "v=19", "v=16", 1),
		"no params":      strings.Join([]string{"", parts[1], parts[2], "", parts[4], parts[5]}, "$"),
		"huge memory":    strings.Replace(good, "m=64", "m=99999999", 1),
		"zero time":      strings.Replace(good, "t=1", "t=0", 1),
		"bad salt":       strings.Join([]string{"", parts[1], parts[2], parts[3], "!!", parts[5]}, "$"),
		"short key":      strings.Join([]string{"", parts[1], parts[2], parts[3], parts[4], "AAAA"}, "$"),
		"missing fields": "$argon2id$v=19$m=64,t=1,p=1",
	} {
		t.Run(name, func(t *testing.T) {
			if _, _, err := pw.Check(context.Background(), "correct horse", hash); !errors.Is(err, errMalformedHash) {
				t.Fatalf("err = %v, want errMalformedHash", err)
			}
		})
	}
}

func TestPasswordConcurrencyBoundedByContext(t *testing.T) {
	pw, err := NewPasswords(fastArgon2, 1)
	if err != nil {
		t.Fatal(err)
	}
	pw.slots <- struct{}{} // the only slot is busy
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := pw.Hash(ctx, "correct horse"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("hash with no free slot: err = %v, want deadline exceeded", err)
	}
	if err := pw.CheckDummy(ctx, "x"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("dummy check with no free slot: err = %v", err)
	}
}
