package user

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/crypto/argon2"
)

// Argon2Params are the argon2id cost parameters; they are stored in every hash, so
// raising them later only changes new hashes (and old ones as their owners log in).
type Argon2Params struct {
	Memory  uint32 // KiB
	Time    uint32 // passes
	Threads uint8
	SaltLen uint32
	KeyLen  uint32
}

// DefaultArgon2 is OWASP's recommended minimum for argon2id: 19 MiB, 2 passes, 1 lane.
var DefaultArgon2 = Argon2Params{Memory: 19456, Time: 2, Threads: 1, SaltLen: 16, KeyLen: 32}

// String is the PHC parameter string, e.g. "m=19456,t=2,p=1".
func (p Argon2Params) String() string {
	return fmt.Sprintf("m=%d,t=%d,p=%d", p.Memory, p.Time, p.Threads)
}

// atLeast reports whether p costs at least as much as q.
func (p Argon2Params) atLeast(q Argon2Params) bool {
	return p.Memory >= q.Memory && p.Time >= q.Time && p.Threads >= q.Threads && p.KeyLen >= q.KeyLen
}

// errMalformedHash is a stored hash this code cannot read: a bug or a corrupt row,
// never the user's fault.
var errMalformedHash = errors.New("user: malformed password hash")

// Passwords hashes and checks passwords with argon2id. Each hash takes Memory KiB, so
// at most slots run at once: a burst of logins queues instead of exhausting memory.
type Passwords struct {
	params Argon2Params
	slots  chan struct{}
	dummy  string // a hash of nothing anyone knows, checked for unknown emails
}

// NewPasswords returns a hasher with params running at most concurrency hashes at once.
func NewPasswords(params Argon2Params, concurrency int) (*Passwords, error) {
	if concurrency < 1 {
		concurrency = 1
	}
	p := &Passwords{params: params, slots: make(chan struct{}, concurrency)}
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return nil, err
	}
	dummy, err := p.Hash(context.Background(), base64.RawStdEncoding.EncodeToString(secret))
	if err != nil {
		return nil, err
	}
	p.dummy = dummy
	return p, nil
}

func (p *Passwords) acquire(ctx context.Context) error {
	select {
	case p.slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (p *Passwords) release() { <-p.slots }

// Hash returns the PHC string $argon2id$v=19$m=…,t=…,p=…$salt$key of password.
func (p *Passwords) Hash(ctx context.Context, password string) (string, error) {
	salt := make([]byte, p.params.SaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	if err := p.acquire(ctx); err != nil {
		return "", err
	}
	key := argon2.IDKey([]byte(password), salt, p.params.Time, p.params.Memory, p.params.Threads, p.params.KeyLen)
	p.release()
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$%s$%s$%s", argon2.Version, p.params, b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

// Check reports whether password matches encoded, comparing in constant time, and
// whether encoded was made with weaker parameters than the current ones.
func (p *Passwords) Check(ctx context.Context, password, encoded string) (ok, weaker bool, err error) {
	params, salt, want, err := parseHash(encoded)
	if err != nil {
		return false, false, err
	}
	if err := p.acquire(ctx); err != nil {
		return false, false, err
	}
	got := argon2.IDKey([]byte(password), salt, params.Time, params.Memory, params.Threads, params.KeyLen)
	p.release()
	return subtle.ConstantTimeCompare(got, want) == 1, !params.atLeast(p.params), nil
}

// CheckDummy spends what Check spends, for a login whose email is unknown, so its
// timing does not tell whether the account exists.
func (p *Passwords) CheckDummy(ctx context.Context, password string) error {
	_, _, err := p.Check(ctx, password, p.dummy)
	return err
}

// maxArgon2Memory bounds the memory parameter read from a stored hash (1 GiB), so a
// corrupt row cannot make one login allocate without limit.
const maxArgon2Memory = 1 << 20

func parseHash(encoded string) (Argon2Params, []byte, []byte, error) {
	parts := strings.Split(encoded, "$")
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" || parts[2] != fmt.Sprintf("v=%d", argon2.Version) {
		return Argon2Params{}, nil, nil, errMalformedHash
	}
	var p Argon2Params
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &p.Memory, &p.Time, &p.Threads); err != nil ||
		p.Memory == 0 || p.Memory > maxArgon2Memory || p.Time == 0 || p.Threads == 0 {
		return Argon2Params{}, nil, nil, errMalformedHash
	}
	salt, err := base64.RawStdEncoding.DecodeString(parts[4])
	if err != nil || len(salt) < 8 {
		return Argon2Params{}, nil, nil, errMalformedHash
	}
	key, err := base64.RawStdEncoding.DecodeString(parts[5])
	if err != nil || len(key) < 16 {
		return Argon2Params{}, nil, nil, errMalformedHash
	}
	p.SaltLen, p.KeyLen = uint32(len(salt)), uint32(len(key))
	return p, salt, key, nil
}
