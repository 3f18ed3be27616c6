// Command user serves accounts, logins and the keys that verify access tokens.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"runtime"
	"time"

	"github.com/go-kit/log/level"

	"github.com/kitshop/kitshop/pkg/app"
	"github.com/kitshop/kitshop/pkg/auth"
	"github.com/kitshop/kitshop/pkg/config"
	"github.com/kitshop/kitshop/user"
)

func main() { app.Main("user", run) }

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("user", flag.ExitOnError)
	var cfg app.Config
	cfg.RegisterFlags(fs, "user", ":8081")
	ttl := fs.Duration("token-ttl", auth.DefaultTokenTTL, "how long an access token is valid (the other services refuse longer ones: give them the same -token-ttl)")
	issuer := fs.String("issuer", auth.DefaultIssuer, "the iss claim of access tokens")
	audience := fs.String("audience", auth.DefaultAudience, "the aud claim of access tokens")
	keyFile := fs.String("key-file", user.DefaultKeyFile(), "signing keyring (JSON, 0600), created on first start; share it between instances (empty: a key in memory, lost on restart)")
	rotate := fs.Bool("rotate-key", false, "make a new signing key current, keep the old one verifiable until its tokens expire, and exit")
	trustForwarded := fs.Bool("trust-forwarded", true, "take the client address of a login from the X-Forwarded-For of calls made by the gateway (proven by its mTLS certificate; never with -tls off)")
	adminEmail := fs.String("admin-email", "", "create this admin account at start if missing (with -admin-password)")
	adminPassword := fs.String("admin-password", "", "password of the -admin-email account")
	allowKnown := fs.Bool("allow-known-admin-password", false, "for a demo nobody else can reach: accept a publicly known -admin-password (such as the compose file's default)")
	perEmail := fs.Int("login-failures-per-email", 10, "failed logins allowed per email per -login-failure-window, across every instance sharing the database (0: unlimited)")
	perAddr := fs.Int("login-failures-per-addr", 10, "failed logins allowed per client address per -login-failure-window, across every instance sharing the database (0: unlimited)")
	window := fs.Duration("login-failure-window", time.Minute, "window of the failed-login limits")
	argonMemory := fs.Uint("argon2-memory", uint(user.DefaultArgon2.Memory), "argon2id memory in KiB for new password hashes (at least 19456)")
	argonTime := fs.Uint("argon2-time", uint(user.DefaultArgon2.Time), "argon2id passes for new password hashes (at least 2)")
	hashers := fs.Int("hash-concurrency", runtime.GOMAXPROCS(0), "password hashes computed at once; each takes -argon2-memory")
	if err := config.Parse(fs, args, nil); err != nil {
		return err
	}
	if *argonMemory < uint(user.DefaultArgon2.Memory) || *argonTime < uint(user.DefaultArgon2.Time) {
		return errors.New("argon2 parameters below OWASP's minimum (m=19456, t=2)")
	}
	if *ttl < time.Minute {
		return errors.New("-token-ttl must be at least a minute")
	}
	if (*adminEmail == "") != (*adminPassword == "") {
		return errors.New("-admin-email and -admin-password go together")
	}
	if *adminPassword != "" && user.KnownPassword(*adminPassword) && !*allowKnown {
		return errors.New("-admin-password (KITSHOP_ADMIN_PASSWORD) is a publicly known default: anyone could log in as the admin; " +
			"choose another, or, on a demo nobody else can reach, pass -allow-known-admin-password (KITSHOP_ALLOW_KNOWN_ADMIN_PASSWORD=true)")
	}

	keys, err := user.OpenKeyring(*keyFile, *issuer, *audience, *ttl, time.Now)
	if err != nil {
		return err
	}
	if *rotate {
		kid, err := keys.Rotate()
		if err != nil {
			return err
		}
		fmt.Println("signing key is now", kid)
		return nil
	}

	a, err := app.New(cfg, os.Stderr)
	if err != nil {
		return err
	}
	defer a.Close()
	db, err := a.OpenDB(ctx, user.Migrations())
	if err != nil {
		return err
	}
	store := user.NewMemoryStore()
	if db != nil {
		store = user.NewPostgresStore(db)
	}
	params := user.DefaultArgon2
	params.Memory, params.Time = uint32(*argonMemory), uint32(*argonTime)
	passwords, err := user.NewPasswords(params, *hashers)
	if err != nil {
		return err
	}
	if *adminEmail != "" {
		if err := user.EnsureAdmin(ctx, store, passwords, *adminEmail, *adminPassword, time.Now()); err != nil {
			return fmt.Errorf("admin account: %w", err)
		}
		_ = level.Info(a.Logger).Log("msg", "admin account ready", "email", *adminEmail)
	}

	// With a database every instance spends the same budgets; in memory, each its own.
	var emailBudget, addrBudget user.Budget = user.NewThrottle(*perEmail, *window, time.Now), user.NewThrottle(*perAddr, *window, time.Now)
	if db != nil {
		emailBudget = user.NewPostgresThrottle(db, "email", *perEmail, *window, time.Now)
		addrBudget = user.NewPostgresThrottle(db, "addr", *perAddr, *window, time.Now)
	}
	svc := user.NewService(store, user.Options{
		Passwords:     passwords,
		Keys:          keys,
		EmailThrottle: emailBudget,
		AddrThrottle:  addrBudget,
		Logger:        a.Logger,
		Now:           time.Now,
	})
	verifier := auth.NewVerifier(keys, *issuer, *audience, *ttl)
	endpoints := user.MakeServerEndpoints(svc, a.Observer(), verifier)
	var forwarded user.Forwarded
	if *trustForwarded {
		forwarded = user.ForwardedBy("gateway")
	}
	user.RegisterGRPCServer(a.GRPCServer(), endpoints, a.Tracer)
	return a.Run(ctx, user.MakeHTTPHandler(endpoints, a.Tracer, forwarded))
}
