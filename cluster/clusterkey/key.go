// Package clusterkey owns the cluster key: its text form and token file,
// and what every node derives from it (the gossip key, the certificate
// authority and the node certificates of the cluster port's mutual TLS).
package clusterkey

import (
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

// The cluster key's text form: a versioned prefix, then the secret in
// unpadded base64url.
const (
	tokenPrefix  = "graft1_"
	tokenSize    = 32
	tokenTextLen = 43 // base64.RawURLEncoding.EncodedLen(tokenSize)
)

// HKDF-SHA256 info strings: one independent key per use of the token.
// Changing one changes what every node derives, so each is versioned.
const (
	infoGossip      = "graft gossip v1"
	infoCA          = "graft ca v1"
	infoFingerprint = "graft fingerprint v1"
)

// clusterServerName is the DNS name in every node certificate and the name
// clients verify: nodes are reached by IP address, and the certificate
// vouches for membership of the cluster, not for a host.
const clusterServerName = "graft-cluster"

// ErrInvalid is wrapped by every Parse error.
var ErrInvalid = errors.New("invalid cluster key")

// A Token is the cluster key: 32 random bytes that key everything between
// nodes. Gossip is encrypted with a key derived from it (GossipKey) and the
// cluster port is mutual TLS under a certificate authority derived from it
// (ClusterTLS), so a node without the token can neither join, read nor
// write. Fingerprint names a token without revealing it.
//
// String returns the secret itself, for the token file and the join
// command: log Fingerprint instead. A Token logged through slog shows only
// its fingerprint, and %#v hides the secret too.
//
// The zero Token keys nothing; IsZero reports it. Generate,
// Parse and LoadOrCreate never return it.
type Token struct {
	secret [tokenSize]byte
}

// Generate returns a new random token.
func Generate() (Token, error) {
	var t Token
	if _, err := rand.Read(t.secret[:]); err != nil {
		return Token{}, fmt.Errorf("cluster key: %w", err)
	}
	return t, nil
}

// Parse parses a token's text form (see String), ignoring surrounding
// white space. Its errors wrap ErrInvalid and never contain the text.
func Parse(s string) (Token, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return Token{}, fmt.Errorf("%w: it is empty", ErrInvalid)
	}
	body, ok := strings.CutPrefix(s, tokenPrefix)
	if !ok {
		return Token{}, fmt.Errorf("%w: it does not start with %q", ErrInvalid, tokenPrefix)
	}
	if len(body) != tokenTextLen {
		return Token{}, fmt.Errorf("%w: %d characters after %q, want %d", ErrInvalid, len(body), tokenPrefix, tokenTextLen)
	}
	var t Token
	n, err := base64.RawURLEncoding.Strict().Decode(t.secret[:], []byte(body))
	if err != nil || n != tokenSize {
		// The decoder's error gives only an offset; keep even that out.
		return Token{}, fmt.Errorf("%w: not unpadded base64url (A-Z, a-z, 0-9, - and _) after %q", ErrInvalid, tokenPrefix)
	}
	if t.IsZero() {
		return Token{}, fmt.Errorf("%w: it is all zeros", ErrInvalid)
	}
	return t, nil
}

// Secret returns the token's text form, "graft1_" and the secret in
// unpadded base64url, which Parse reads back. Write it only where the
// secret belongs. The zero Token's is "".
func (t Token) Secret() string {
	if t.IsZero() {
		return ""
	}
	return tokenPrefix + base64.RawURLEncoding.EncodeToString(t.secret[:])
}

// String names the token by its fingerprint, so that printing a token (or
// a struct holding one) with any fmt verb never reveals it; use Secret for
// the text form.
func (t Token) String() string {
	if t.IsZero() {
		return ""
	}
	return "cluster key " + t.Fingerprint()
}

// IsZero reports whether t is the zero Token, which keys nothing.
func (t Token) IsZero() bool {
	return subtle.ConstantTimeCompare(t.secret[:], make([]byte, tokenSize)) == 1
}

// Equal reports whether t and u are the same key, in constant time.
func (t Token) Equal(u Token) bool {
	return subtle.ConstantTimeCompare(t.secret[:], u.secret[:]) == 1
}

// Fingerprint returns a short name of the token, 8 hex digits, that is safe
// to log and show: two operators compare fingerprints to check that they
// hold the same key without revealing it. The zero Token's is "".
func (t Token) Fingerprint() string {
	if t.IsZero() {
		return ""
	}
	return hex.EncodeToString(t.derive(infoFingerprint, 4))
}

// LogValue shows a token in structured logs by its fingerprint only.
func (t Token) LogValue() slog.Value {
	return slog.GroupValue(slog.String("fingerprint", t.Fingerprint()))
}

// GoString keeps the secret out of %#v.
func (t Token) GoString() string {
	return fmt.Sprintf("clusterkey.Token{fingerprint: %q}", t.Fingerprint())
}

// GossipKey returns the 32-byte AES-256 key that encrypts gossip, for
// memberlist's keyring. Every holder of the token derives the same key. It
// panics on the zero Token, whose key every unkeyed node would share.
func (t Token) GossipKey() []byte {
	if t.IsZero() {
		panic("clusterkey: GossipKey of the zero Token")
	}
	return t.derive(infoGossip, 32)
}

// derive returns n bytes of HKDF-SHA256 of the secret for one use (info).
func (t Token) derive(info string, n int) []byte {
	k, err := hkdf.Key(sha256.New, t.secret[:], nil, info, n)
	if err != nil {
		panic("clusterkey: hkdf: " + err.Error()) // only for n > 255*32
	}
	return k
}

// The certificate authority's fixed fields: every node must derive the
// same certificate from the same token. Its validity is RFC 5280's "no
// expiry"; node certificates carry the real dates.
var (
	caSerial    = big.NewInt(1)
	caSubject   = pkix.Name{CommonName: "graft cluster key", Organization: []string{"graft"}}
	caNotBefore = time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	caNotAfter  = time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)
)

// Node certificates' validity: back-dated for clocks that run behind.
const (
	certBackdate = time.Hour
	certLifetime = 10 * 365 * 24 * time.Hour
)

// clusterCA derives the token's certificate authority: an ed25519 key from
// HKDF and a self-signed certificate with fixed fields, identical on every
// node and never written anywhere.
func (t Token) clusterCA() (*x509.Certificate, ed25519.PrivateKey, error) {
	key := ed25519.NewKeyFromSeed(t.derive(infoCA, ed25519.SeedSize))
	pub := key.Public().(ed25519.PublicKey)
	skid := sha256.Sum256(pub)
	tmpl := &x509.Certificate{
		SerialNumber:          caSerial,
		Subject:               caSubject,
		NotBefore:             caNotBefore,
		NotAfter:              caNotAfter,
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		SubjectKeyId:          skid[:20],
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, key)
	if err != nil {
		return nil, nil, fmt.Errorf("cluster key: CA certificate: %w", err)
	}
	ca, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, fmt.Errorf("cluster key: CA certificate: %w", err)
	}
	return ca, key, nil
}

// ClusterTLS returns the mutual TLS configurations of the cluster port
// (Config.ServerTLS and Config.ClientTLS), keyed only by the token. Each call
// mints a new key for the node and a certificate for it, named nodeID and
// signed by the token's certificate authority. Both sides require TLS 1.3
// and a peer certificate from that authority, so a peer with another token,
// or without TLS, fails the handshake.
//
// Every holder of the token can mint a certificate for any node ID: the
// certificate proves membership of the cluster, not which node the peer
// is. The peer's ID is in ConnectionState().PeerCertificates[0].Subject.
//
// A peer with another token fails the handshake with Go's own messages.
// The side that checks the other's certificate first (the client, since
// the server shows its certificate first) reports
//
//	tls: failed to verify certificate: x509: certificate signed by unknown
//	authority (possibly because of "x509: Ed25519 verification failure"
//	while trying to verify candidate authority certificate "graft cluster key")
//
// and its peer "remote error: tls: bad certificate". (When only the
// client's certificate is from another token, the server reports the
// message above and the client, on its first read, "remote error: tls:
// unknown certificate authority".) A client without a certificate reads
// "remote error: tls: certificate required" and the server reports "tls:
// client didn't provide a certificate"; a client without TLS makes the
// server report "tls: first record does not look like a TLS handshake".
//
// In TLS 1.3 a client's handshake completes before the server has checked
// the client's certificate, so a refusal of the client reaches it only on
// its first read.
func (t Token) ClusterTLS(nodeID string) (server, client *tls.Config, err error) {
	if t.IsZero() {
		return nil, nil, errors.New("cluster key: ClusterTLS of the zero Token")
	}
	if nodeID == "" {
		return nil, nil, errors.New("cluster key: ClusterTLS: node ID is empty")
	}
	ca, caKey, err := t.clusterCA()
	if err != nil {
		return nil, nil, err
	}
	cert, err := nodeCert(ca, caKey, nodeID, time.Now())
	if err != nil {
		return nil, nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	server = &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    pool,
	}
	client = &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cert},
		RootCAs:      pool,
		ServerName:   clusterServerName,
	}
	return server, client, nil
}

// nodeCert mints a key and a certificate for nodeID, valid from an hour
// before now for certLifetime, for both ends of a connection.
func nodeCert(ca *x509.Certificate, caKey ed25519.PrivateKey, nodeID string, now time.Time) (tls.Certificate, error) {
	pub, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("cluster key: node key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("cluster key: serial number: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: nodeID},
		DNSNames:     []string{clusterServerName},
		NotBefore:    now.Add(-certBackdate),
		NotAfter:     now.Add(certLifetime),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, pub, caKey)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("cluster key: node certificate for %q: %w", nodeID, err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("cluster key: node certificate for %q: %w", nodeID, err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, nil
}

// LoadOrCreate reads the token file at path or, if there is none,
// generates a token and writes it there (creating the directory, 0700 if
// new), reporting created. The file holds the text form and a newline, and
// is created with mode 0600 atomically: a concurrent reader or creator sees
// no file or the whole token, never a part. An existing file that group or
// others may read or write is refused, as is one that does not parse.
func LoadOrCreate(path string) (tok Token, created bool, err error) {
	tok, err = loadToken(path)
	if !errors.Is(err, fs.ErrNotExist) {
		return tok, false, err
	}
	tok, err = Generate()
	if err != nil {
		return Token{}, false, err
	}
	err = WriteFile(path, tok)
	if errors.Is(err, fs.ErrExist) { // another process made it first: use theirs
		tok, err = loadToken(path)
		return tok, false, err
	}
	if err != nil {
		return Token{}, false, err
	}
	return tok, true, nil
}

// loadToken reads a token file, checking its permissions first. A missing
// file's error wraps fs.ErrNotExist.
func loadToken(path string) (Token, error) {
	f, err := os.Open(path)
	if err != nil {
		return Token{}, fmt.Errorf("cluster key: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return Token{}, fmt.Errorf("cluster key: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return Token{}, fmt.Errorf("cluster key: %s is not a regular file", path)
	}
	// Windows has no such permission bits to check.
	if perm := fi.Mode().Perm(); perm&0o077 != 0 && runtime.GOOS != "windows" {
		return Token{}, fmt.Errorf("cluster key: token file %s has mode %04o: group and others must have no access (chmod 600 %s)", path, perm, path)
	}
	// A token file is one line: read no more than a few.
	text, err := io.ReadAll(io.LimitReader(f, 256))
	if err != nil {
		return Token{}, fmt.Errorf("cluster key: reading %s: %w", path, err)
	}
	tok, err := Parse(string(text))
	if err != nil {
		return Token{}, fmt.Errorf("cluster key: token file %s: %w", path, err)
	}
	return tok, nil
}

// WriteFile writes tok to path (mode 0600) atomically, refusing to
// replace an existing file: it writes a temporary file beside path and
// links it into place, which fails with fs.ErrExist if path exists. Where
// the file system has no hard links, it renames instead.
func WriteFile(path string, tok Token) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("cluster key: %w", err)
	}
	f, err := os.CreateTemp(dir, ".graft-token-*") // mode 0600
	if err != nil {
		return fmt.Errorf("cluster key: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	_, err = f.WriteString(tok.Secret() + "\n")
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("cluster key: writing %s: %w", tmp, err)
	}
	if err := os.Link(tmp, path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return err
		}
		if _, serr := os.Lstat(path); serr == nil {
			return fs.ErrExist
		}
		if err := os.Rename(tmp, path); err != nil {
			return fmt.Errorf("cluster key: %w", err)
		}
	}
	// Make the new name durable; an error here leaves a usable file.
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}
