package auth_test

import (
	"context"
	"fmt"
	"time"

	"github.com/kitshop/kitshop/pkg/auth"
)

// Tests of a service with 🔒 routes mint their own tokens: a Signer with a fresh key,
// and a Verifier over that key alone.
func ExampleSigner() {
	kid, key, err := auth.GenerateKey()
	if err != nil {
		panic(err)
	}
	signer := auth.NewSigner(kid, key, auth.DefaultIssuer, auth.DefaultAudience, 15*time.Minute)
	verifier := auth.NewVerifier(auth.StaticKeys{signer.KeyID(): signer.PublicKey()}, auth.DefaultIssuer, auth.DefaultAudience, signer.TTL())

	token, _, err := signer.Sign(auth.Caller{UserID: "u1", Email: "ada@example.com", Role: auth.RoleCustomer}, time.Now())
	if err != nil {
		panic(err)
	}
	caller, err := verifier.Verify(context.Background(), token)
	fmt.Println(caller.UserID, caller.Role, err)
	// Output: u1 customer <nil>
}
