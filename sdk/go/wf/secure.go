package wf

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
)

// Security says how a client reaches a sidecar that serves TLS (--tls-cert), mutual TLS
// (--tls-client-ca) or requires a bearer token (--auth-token-file).
type Security struct {
	// CAFile is the PEM CA that signed the sidecar's certificate. Setting it (or CertFile,
	// or TLS) turns TLS on; with TLS and no CAFile the system's CAs are used.
	CAFile string
	// CertFile and KeyFile are this worker's PEM certificate and key, for mutual TLS.
	CertFile, KeyFile string
	// Token is sent on every call as the metadata "authorization: Bearer <token>".
	Token string
	// TLS turns TLS on with the system's CAs when no CAFile is given.
	TLS bool
}

// The environment variables every SDK reads (docs/client-contract.md).
const (
	EnvAddress    = "PYNENC_SIDECAR_ADDRESS"
	EnvTLS        = "PYNENC_SIDECAR_TLS"
	EnvTLSCA      = "PYNENC_SIDECAR_TLS_CA"
	EnvClientCert = "PYNENC_SIDECAR_CLIENT_CERT"
	EnvClientKey  = "PYNENC_SIDECAR_CLIENT_KEY"
	EnvToken      = "PYNENC_SIDECAR_TOKEN"
)

// SecurityFromEnv reads the variables every pynenc-sidecar SDK reads:
// PYNENC_SIDECAR_TLS_CA, PYNENC_SIDECAR_CLIENT_CERT, PYNENC_SIDECAR_CLIENT_KEY,
// PYNENC_SIDECAR_TOKEN and PYNENC_SIDECAR_TLS (true: TLS with the system's CAs).
func SecurityFromEnv() Security {
	env := func(name string) string { return strings.TrimSpace(os.Getenv(name)) }
	s := Security{CAFile: env(EnvTLSCA), CertFile: env(EnvClientCert), KeyFile: env(EnvClientKey), Token: env(EnvToken)}
	switch strings.ToLower(env(EnvTLS)) {
	case "1", "true", "yes":
		s.TLS = true
	}
	return s
}

// UsesTLS reports whether these settings connect with TLS.
func (s Security) UsesTLS() bool { return s.TLS || s.CAFile != "" || s.CertFile != "" }

// TLSConfig is the client TLS configuration of these settings (nil when TLS is off).
func (s Security) TLSConfig() (*tls.Config, error) {
	if !s.UsesTLS() {
		return nil, nil
	}
	config := &tls.Config{MinVersion: tls.VersionTLS12}
	if s.CAFile != "" {
		pem, err := os.ReadFile(s.CAFile)
		if err != nil {
			return nil, fmt.Errorf("wf: reading the CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("wf: %s holds no PEM certificate", s.CAFile)
		}
		config.RootCAs = pool
	}
	if (s.CertFile == "") != (s.KeyFile == "") {
		return nil, errors.New("wf: a client certificate needs its key: set both CertFile and KeyFile")
	}
	if s.CertFile != "" {
		pair, err := tls.LoadX509KeyPair(s.CertFile, s.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("wf: loading the client certificate: %w", err)
		}
		config.Certificates = []tls.Certificate{pair}
	}
	return config, nil
}

// DialOptions are the grpc.DialOptions of these settings: transport credentials (TLS or
// plaintext) and, with a Token, per-call bearer credentials.
func (s Security) DialOptions() ([]grpc.DialOption, error) {
	config, err := s.TLSConfig()
	if err != nil {
		return nil, err
	}
	var opts []grpc.DialOption
	if config != nil {
		opts = append(opts, grpc.WithTransportCredentials(credentials.NewTLS(config)))
	} else {
		opts = append(opts, grpc.WithTransportCredentials(insecure.NewCredentials()))
	}
	if s.Token != "" {
		opts = append(opts, WithToken(s.Token))
	}
	return opts, nil
}

// DialSecure connects with these security settings (WithGRPCOptions adds to them).
func DialSecure(target string, s Security, opts ...Option) (*Client, error) {
	base, err := s.DialOptions()
	if err != nil {
		return nil, err
	}
	return Dial(target, append([]Option{WithGRPCOptions(base...)}, opts...)...)
}

// WithToken sends "authorization: Bearer <token>" on every call. It is allowed on a
// plaintext connection too (a sidecar on localhost); across a network, use TLS.
func WithToken(token string) grpc.DialOption {
	return grpc.WithPerRPCCredentials(bearerToken(token))
}

type bearerToken string

func (t bearerToken) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(t)}, nil
}

func (t bearerToken) RequireTransportSecurity() bool { return false }
