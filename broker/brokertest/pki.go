package brokertest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// PKI is a throwaway certificate authority for TLS tests: it signs a
// server certificate for localhost and 127.0.0.1 and device certificates
// whose common name is a thing name, and writes them as PEM files.
type PKI struct {
	t      testing.TB
	Dir    string
	CA     *x509.Certificate
	caKey  *ecdsa.PrivateKey
	CAFile string // PEM of the CA certificate
	serial int64
}

// NewPKI creates a CA in a temporary directory.
func NewPKI(t testing.TB) *PKI {
	t.Helper()
	p := &PKI{t: t, Dir: t.TempDir()}
	key := newKey(t)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "jobsbroker test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	p.CA, _ = x509.ParseCertificate(der)
	p.caKey = key
	p.serial = 1
	p.CAFile = p.write("ca.pem", "CERTIFICATE", der)
	return p
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

func (p *PKI) write(name, block string, der []byte) string {
	path := filepath.Join(p.Dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: block, Bytes: der}), 0o600); err != nil {
		p.t.Fatal(err)
	}
	return path
}

// CertFiles is a certificate and its key as PEM files.
type CertFiles struct {
	Cert, Key string
	Pair      tls.Certificate
}

// issue signs a certificate for cn valid from notBefore to notAfter.
func (p *PKI) issue(name, cn string, server bool, notBefore, notAfter time.Time) CertFiles {
	p.t.Helper()
	key := newKey(p.t)
	p.serial++
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(p.serial),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    notBefore,
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.DNSNames = []string{"localhost"}
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.CA, &key.PublicKey, p.caKey)
	if err != nil {
		p.t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		p.t.Fatal(err)
	}
	f := CertFiles{Cert: p.write(name+".pem", "CERTIFICATE", der), Key: p.write(name+".key", "PRIVATE KEY", kder)}
	f.Pair, err = tls.LoadX509KeyPair(f.Cert, f.Key)
	if err != nil {
		p.t.Fatal(err)
	}
	return f
}

// Server issues the broker's certificate (localhost, 127.0.0.1, ::1),
// under name in Dir.
func (p *PKI) Server(name string) CertFiles {
	return p.issue(name, "jobsbroker", true, time.Now().Add(-time.Hour), time.Now().Add(12*time.Hour))
}

// Device issues a device certificate whose common name is thing.
func (p *PKI) Device(thing string) CertFiles {
	return p.issue("device-"+thing, thing, false, time.Now().Add(-time.Hour), time.Now().Add(12*time.Hour))
}

// ExpiredDevice issues a device certificate that expired an hour ago.
func (p *PKI) ExpiredDevice(thing string) CertFiles {
	return p.issue("expired-"+thing, thing, false, time.Now().Add(-3*time.Hour), time.Now().Add(-time.Hour))
}

// ClientTLS returns a client TLS configuration that trusts the CA and
// presents cert (none when cert is nil).
func (p *PKI) ClientTLS(cert *CertFiles) *tls.Config {
	pool := x509.NewCertPool()
	pool.AddCert(p.CA)
	c := &tls.Config{RootCAs: pool, ServerName: "localhost", MinVersion: tls.VersionTLS12}
	if cert != nil {
		c.Certificates = []tls.Certificate{cert.Pair}
	}
	return c
}
