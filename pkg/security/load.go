package security

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"time"
)

// maxPEMFile bounds what is read from a configured path: a certificate chain
// or CA bundle is a few KiB, and a path pointing at /dev/zero or a log file
// must not exhaust memory.
const maxPEMFile = 1 << 20

// Files names the PEM files of one TLS identity and the config keys they come
// from, so that every error can name both.
type Files struct {
	Cert, Key, CA          string // paths; empty = not configured
	CertKey, KeyKey, CAKey string // config keys, e.g. security.ssl.internal.cert
}

// material is one consistent load of Files: a certificate with its key and
// the CA pool. It is immutable once built.
type material struct {
	cert   *tls.Certificate // nil when no Cert/Key is configured
	leaf   *x509.Certificate
	pool   *x509.CertPool // nil when no CA is configured
	digest [sha256.Size]byte
}

// readPEMFile reads a configured file, bounded by maxPEMFile, with errors
// that name the key and the file.
func readPEMFile(key, path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fileError(key, path, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxPEMFile+1))
	if err != nil {
		return nil, fileError(key, path, err)
	}
	if len(b) > maxPEMFile {
		return nil, fmt.Errorf("%s: %s is larger than %d bytes: not a PEM certificate or key", key, path, maxPEMFile)
	}
	return b, nil
}

func fileError(key, path string, err error) error {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("%s: %s does not exist", key, path)
	case errors.Is(err, fs.ErrPermission):
		return fmt.Errorf("%s: cannot read %s: permission denied", key, path)
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err // the path is already in the message
	}
	return fmt.Errorf("%s: cannot read %s: %v", key, path, err)
}

// parseCerts returns every CERTIFICATE block of a PEM file, in order.
func parseCerts(key, path string, data []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	rest := data
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			if strings.Contains(b.Type, "PRIVATE KEY") {
				return nil, fmt.Errorf("%s: %s holds a private key (PEM %q), want certificates", key, path, b.Type)
			}
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s: %s: certificate %d does not parse: %v", key, path, len(certs)+1, err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, fmt.Errorf("%s: %s is not a PEM certificate file (no -----BEGIN CERTIFICATE----- block)", key, path)
	}
	return certs, nil
}

// checkKeyPEM gives the reasons tls.X509KeyPair reports vaguely. It looks at
// block types and headers only, never at the key bytes.
func checkKeyPEM(key, path string, data []byte) error {
	rest := data
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			return fmt.Errorf("%s: %s is not a PEM private key file (no -----BEGIN ... PRIVATE KEY----- block)", key, path)
		}
		if strings.HasSuffix(b.Type, "PRIVATE KEY") {
			// Legacy (DEK-Info) or PKCS#8 encryption: detected, never decrypted.
			if _, ok := b.Headers["DEK-Info"]; ok || b.Type == "ENCRYPTED PRIVATE KEY" {
				return fmt.Errorf("%s: %s is an encrypted private key: weir needs it unencrypted (protect it with file permissions)", key, path)
			}
			return nil
		}
		if b.Type == "CERTIFICATE" {
			return fmt.Errorf("%s: %s holds a certificate, want the private key", key, path)
		}
	}
}

// load reads and checks f at time now. Cert and Key go together; CA alone is
// allowed (an API client without a client certificate).
func load(f Files, now time.Time) (*material, error) {
	m := &material{}
	h := sha256.New()
	if f.Cert != "" || f.Key != "" {
		if f.Cert == "" {
			return nil, fmt.Errorf("%s is set but %s is not: both are needed", f.KeyKey, f.CertKey)
		}
		if f.Key == "" {
			return nil, fmt.Errorf("%s is set but %s is not: both are needed", f.CertKey, f.KeyKey)
		}
		certPEM, err := readPEMFile(f.CertKey, f.Cert)
		if err != nil {
			return nil, err
		}
		keyPEM, err := readPEMFile(f.KeyKey, f.Key)
		if err != nil {
			return nil, err
		}
		h.Write(certPEM)
		h.Write(keyPEM)
		chain, err := parseCerts(f.CertKey, f.Cert, certPEM)
		if err != nil {
			return nil, err
		}
		if err := checkKeyPEM(f.KeyKey, f.Key, keyPEM); err != nil {
			return nil, err
		}
		leaf := chain[0]
		if now.After(leaf.NotAfter) {
			return nil, fmt.Errorf("%s: %s: certificate %q expired at %s", f.CertKey, f.Cert,
				leaf.Subject.String(), leaf.NotAfter.UTC().Format(time.RFC3339))
		}
		pair, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			if strings.Contains(err.Error(), "does not match") {
				return nil, fmt.Errorf("%s: %s does not match the certificate %q in %s (%s)", f.KeyKey, f.Key,
					leaf.Subject.String(), f.Cert, f.CertKey)
			}
			// crypto/tls's messages name the problem, not the key's bytes.
			return nil, fmt.Errorf("%s: %s: %v", f.KeyKey, f.Key, strings.TrimPrefix(err.Error(), "tls: "))
		}
		m.cert, m.leaf = &pair, leaf
	}
	if f.CA != "" {
		caPEM, err := readPEMFile(f.CAKey, f.CA)
		if err != nil {
			return nil, err
		}
		h.Write(caPEM)
		cas, err := parseCerts(f.CAKey, f.CA, caPEM)
		if err != nil {
			return nil, err
		}
		m.pool = x509.NewCertPool()
		for _, c := range cas {
			m.pool.AddCert(c)
		}
	}
	copy(m.digest[:], h.Sum(nil))
	return m, nil
}

// digestFiles hashes the files' contents in load's order: equal digests mean
// nothing to reload. Reading a few KiB beats trusting mtimes, whose
// granularity can hide a same-size rewrite.
func digestFiles(f Files) ([sha256.Size]byte, error) {
	var d [sha256.Size]byte
	h := sha256.New()
	for _, p := range []struct{ key, path string }{{f.CertKey, f.Cert}, {f.KeyKey, f.Key}, {f.CAKey, f.CA}} {
		if p.path == "" {
			continue
		}
		b, err := readPEMFile(p.key, p.path)
		if err != nil {
			return d, err
		}
		h.Write(b)
	}
	copy(d[:], h.Sum(nil))
	return d, nil
}
