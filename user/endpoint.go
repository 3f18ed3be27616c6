package user

import (
	"context"
	"net/http"
	"time"

	"github.com/go-kit/kit/endpoint"

	"github.com/kitshop/kitshop/pkg/auth"
	"github.com/kitshop/kitshop/pkg/observe"
)

// Endpoints collects the user endpoints. On the server each one calls the Service; on
// the client each one calls a remote instance, and Endpoints itself satisfies Service.
type Endpoints struct {
	RegisterEndpoint endpoint.Endpoint
	LoginEndpoint    endpoint.Endpoint
	MeEndpoint       endpoint.Endpoint
	JWKSEndpoint     endpoint.Endpoint
}

// MakeServerEndpoints wires each endpoint to s, with /v1/users/me behind v, and every
// endpoint observed (span, log line, metrics). Requests are never logged, so passwords
// never reach a log line.
func MakeServerEndpoints(s Service, obs observe.Observer, v auth.Verifier) Endpoints {
	return Endpoints{
		RegisterEndpoint: obs.Endpoint("register", makeRegisterEndpoint(s)),
		LoginEndpoint:    obs.Endpoint("login", makeLoginEndpoint(s)),
		MeEndpoint:       obs.Endpoint("me", auth.Authenticated(v)(makeMeEndpoint(s))),
		JWKSEndpoint:     obs.Endpoint("jwks", makeJWKSEndpoint(s)),
	}
}

// Wire types.

type registerRequest struct {
	Email    string `json:"email"`
	Password string `json:"password"`
	Name     string `json:"name"`
}

type loginRequest struct {
	Email    string `json:"email"`
	Password string `json:"password"`
}

type loginResponse struct {
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type"`
	ExpiresIn   int64  `json:"expires_in"` // seconds
}

type userView struct {
	ID        string    `json:"id"`
	Email     string    `json:"email"`
	Name      string    `json:"name"`
	Role      string    `json:"role"`
	CreatedAt time.Time `json:"created_at"`
	created   bool
}

func viewUser(u User) userView {
	return userView{ID: u.ID, Email: u.Email, Name: u.Name, Role: u.Role, CreatedAt: u.CreatedAt}
}

func (v userView) user() User {
	return User{ID: v.ID, Email: v.Email, Name: v.Name, Role: v.Role, CreatedAt: v.CreatedAt}
}

// StatusCode answers 201 for an account just created.
func (v userView) StatusCode() int {
	if v.created {
		return http.StatusCreated
	}
	return http.StatusOK
}

// Server endpoints.

func makeRegisterEndpoint(s Service) endpoint.Endpoint {
	return func(ctx context.Context, request any) (any, error) {
		req := request.(registerRequest)
		u, err := s.Register(ctx, Registration{Email: req.Email, Password: req.Password, Name: req.Name})
		if err != nil {
			return nil, err
		}
		v := viewUser(u)
		v.created = true
		return v, nil
	}
}

func makeLoginEndpoint(s Service) endpoint.Endpoint {
	return func(ctx context.Context, request any) (any, error) {
		req := request.(loginRequest)
		t, err := s.Login(ctx, req.Email, req.Password)
		if err != nil {
			return nil, err
		}
		return loginResponse{AccessToken: t.AccessToken, TokenType: "Bearer", ExpiresIn: int64(t.ExpiresIn / time.Second)}, nil
	}
}

func makeMeEndpoint(s Service) endpoint.Endpoint {
	return func(ctx context.Context, _ any) (any, error) {
		u, err := s.Me(ctx)
		if err != nil {
			return nil, err
		}
		return viewUser(u), nil
	}
}

func makeJWKSEndpoint(s Service) endpoint.Endpoint {
	return func(ctx context.Context, _ any) (any, error) {
		return s.JWKS(ctx)
	}
}

// Client side: Endpoints is a Service.

// Register implements Service.
func (e Endpoints) Register(ctx context.Context, r Registration) (User, error) {
	resp, err := e.RegisterEndpoint(ctx, registerRequest{Email: r.Email, Password: r.Password, Name: r.Name})
	if err != nil {
		return User{}, err
	}
	return resp.(userView).user(), nil
}

// Login implements Service.
func (e Endpoints) Login(ctx context.Context, email, password string) (Token, error) {
	resp, err := e.LoginEndpoint(ctx, loginRequest{Email: email, Password: password})
	if err != nil {
		return Token{}, err
	}
	r := resp.(loginResponse)
	return Token{AccessToken: r.AccessToken, ExpiresIn: time.Duration(r.ExpiresIn) * time.Second}, nil
}

// Me implements Service; the caller's token travels from ctx (auth.ContextToHTTP).
func (e Endpoints) Me(ctx context.Context) (User, error) {
	resp, err := e.MeEndpoint(ctx, nil)
	if err != nil {
		return User{}, err
	}
	return resp.(userView).user(), nil
}

// JWKS implements Service.
func (e Endpoints) JWKS(ctx context.Context) (auth.JWKS, error) {
	resp, err := e.JWKSEndpoint(ctx, nil)
	if err != nil {
		return auth.JWKS{}, err
	}
	return resp.(auth.JWKS), nil
}
