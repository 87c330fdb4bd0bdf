// Package certs owns the broker's TLS material: the server certificate
// and key, and the CA bundle that client certificates are verified
// against. Reload re-reads the files (on SIGHUP); handshakes that start
// afterwards use the new material, and connections already up are left
// alone.
package certs

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"time"
)

// Files names the PEM files.
type Files struct {
	// Cert and Key are the server's certificate chain and private key.
	Cert, Key string
	// ClientCA is the bundle of CAs that sign client certificates; empty
	// means clients are not asked for certificates.
	ClientCA string
}

// Store holds the loaded material.
type Store struct {
	files  Files
	cert   atomic.Pointer[tls.Certificate]
	pool   atomic.Pointer[x509.CertPool]
	loaded atomic.Pointer[time.Time]
}

// Load reads the files once; Reload reads them again.
func Load(f Files) (*Store, error) {
	if f.Cert == "" || f.Key == "" {
		return nil, errors.New("a TLS certificate needs both a certificate file and a key file")
	}
	s := &Store{files: f}
	if err := s.Reload(); err != nil {
		return nil, err
	}
	return s, nil
}

// Reload re-reads the files. On an error the material in use is kept.
func (s *Store) Reload() error {
	cert, err := tls.LoadX509KeyPair(s.files.Cert, s.files.Key)
	if err != nil {
		return fmt.Errorf("load TLS certificate %s with key %s: %w", s.files.Cert, s.files.Key, err)
	}
	var pool *x509.CertPool
	if s.files.ClientCA != "" {
		b, err := os.ReadFile(s.files.ClientCA)
		if err != nil {
			return fmt.Errorf("read client CA bundle: %w", err)
		}
		pool = x509.NewCertPool()
		if !pool.AppendCertsFromPEM(b) {
			return fmt.Errorf("client CA bundle %s holds no PEM certificate", s.files.ClientCA)
		}
	}
	s.cert.Store(&cert)
	s.pool.Store(pool)
	now := time.Now()
	s.loaded.Store(&now)
	return nil
}

// VerifiesClients reports whether a client CA bundle is configured.
func (s *Store) VerifiesClients() bool { return s.files.ClientCA != "" }

// Leaf returns the server certificate in use.
func (s *Store) Leaf() *x509.Certificate {
	c := s.cert.Load()
	if c.Leaf != nil {
		return c.Leaf
	}
	leaf, err := x509.ParseCertificate(c.Certificate[0])
	if err != nil {
		return nil
	}
	return leaf
}

// ClientAuth says what a listener asks of clients.
type ClientAuth int

// The client-certificate policies of a listener.
const (
	// NoClientCert asks for no client certificate.
	NoClientCert ClientAuth = iota
	// OptionalClientCert verifies a client certificate if one is sent
	// (the data plane, where SigV4 is the alternative).
	OptionalClientCert
	// RequireClientCert refuses a handshake without a valid client
	// certificate (identity mtls).
	RequireClientCert
)

// ServerConfig returns a TLS configuration for a listener that offers
// nextProtos by ALPN. Each handshake takes the material current at that
// moment. Without a client CA bundle, clients are never asked for a
// certificate, whatever auth says.
func (s *Store) ServerConfig(auth ClientAuth, nextProtos ...string) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		NextProtos: nextProtos,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			c := &tls.Config{
				MinVersion:   tls.VersionTLS12,
				NextProtos:   nextProtos,
				Certificates: []tls.Certificate{*s.cert.Load()},
			}
			if pool := s.pool.Load(); pool != nil {
				c.ClientCAs = pool
				switch auth {
				case OptionalClientCert:
					c.ClientAuth = tls.VerifyClientCertIfGiven
				case RequireClientCert:
					c.ClientAuth = tls.RequireAndVerifyClientCert
				}
			}
			return c, nil
		},
	}
}
