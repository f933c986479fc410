package clusterkey

import (
	"bytes"
	"crypto/ed25519"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

func newToken(t *testing.T) Token {
	t.Helper()
	tok, err := Generate()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// fixedToken is the token whose secret is the bytes 0 to 31.
func fixedToken() Token {
	var tok Token
	for i := range tok.secret {
		tok.secret[i] = byte(i)
	}
	return tok
}

func TestTokenRoundTrip(t *testing.T) {
	for range 20 {
		tok := newToken(t)
		s := tok.Secret()
		if !strings.HasPrefix(s, "graft1_") || len(s) != len("graft1_")+43 {
			t.Fatalf("Secret() = %q, want graft1_ and 43 characters", s)
		}
		got, err := Parse(s)
		if err != nil {
			t.Fatalf("Parse(Secret()): %v", err)
		}
		if !got.Equal(tok) || got != tok {
			t.Fatal("Parse(Secret()) is another token")
		}
		if got, err := Parse("  " + s + "\n"); err != nil || !got.Equal(tok) {
			t.Fatalf("Parse with surrounding space: %v", err)
		}
	}
	if got, want := fixedToken().Secret(), "graft1_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8"; got != want {
		t.Errorf("Secret() = %q, want %q", got, want)
	}
}

func TestParseTokenErrors(t *testing.T) {
	body := strings.TrimPrefix(newToken(t).Secret(), "graft1_")
	for _, tc := range []struct {
		name, in, want string
	}{
		{"empty", "", "empty"},
		{"space", " \n", "empty"},
		{"no prefix", body, `does not start with "graft1_"`},
		{"other version", "graft2_" + body, `does not start with "graft1_"`},
		{"upper-case prefix", "GRAFT1_" + body, `does not start with "graft1_"`},
		{"short", "graft1_" + body[:42], "42 characters after"},
		{"long", "graft1_" + body + "A", "44 characters after"},
		{"padded", "graft1_" + body + "=", "44 characters after"},
		{"std alphabet", "graft1_" + body[:20] + "+" + body[21:], "base64url"},
		{"inner space", "graft1_" + body[:20] + " " + body[21:], "base64url"},
		{"non-canonical", "graft1_" + body[:42] + "B", "base64url"}, // low bits of the last character set
		{"all zeros", "graft1_" + strings.Repeat("A", 43), "all zeros"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse(tc.in)
			if err == nil {
				t.Fatal("accepted")
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("error %q does not wrap ErrInvalid", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not say %q", err, tc.want)
			}
			for i := 0; i+8 <= len(body); i++ { // no run of 8 secret characters
				if strings.Contains(err.Error(), body[i:i+8]) {
					t.Fatalf("error %q contains part of the secret", err)
				}
			}
		})
	}
}

// The zero Token keys nothing and says so rather than deriving a key that
// every unkeyed node would share.
func TestZeroToken(t *testing.T) {
	var zero Token
	if !zero.IsZero() || newToken(t).IsZero() {
		t.Error("IsZero is wrong")
	}
	if zero.Secret() != "" || zero.Fingerprint() != "" {
		t.Errorf("zero Token: Secret %q, Fingerprint %q, want empty", zero.Secret(), zero.Fingerprint())
	}
	if _, _, err := zero.ClusterTLS("a"); err == nil {
		t.Error("ClusterTLS of the zero Token succeeded")
	}
	defer func() {
		if recover() == nil {
			t.Error("GossipKey of the zero Token did not panic")
		}
	}()
	zero.GossipKey()
}

// The secret stays out of logs and %#v.
func TestTokenNotLogged(t *testing.T) {
	tok := newToken(t)
	var buf bytes.Buffer
	slog.New(slog.NewTextHandler(&buf, nil)).Info("keyed", "key", tok)
	if !strings.Contains(buf.String(), "key.fingerprint="+tok.Fingerprint()) {
		t.Errorf("log %q lacks the fingerprint", buf.String())
	}
	secret := strings.TrimPrefix(tok.Secret(), "graft1_")
	for _, out := range []string{buf.String(), fmt.Sprintf("%#v", tok), fmt.Sprintf("%v %+v %s", tok, struct{ K Token }{tok}, tok)} {
		if strings.Contains(out, secret) {
			t.Errorf("%q contains the secret", out)
		}
	}
}

func TestTokenDerivations(t *testing.T) {
	a, b := newToken(t), newToken(t)
	caA1, _, err := a.clusterCA()
	if err != nil {
		t.Fatal(err)
	}
	caA2, _, err := a.clusterCA()
	if err != nil {
		t.Fatal(err)
	}
	caB, _, err := b.clusterCA()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(caA1.Raw, caA2.Raw) {
		t.Error("one token derived two CA certificates")
	}
	if bytes.Equal(caA1.RawSubjectPublicKeyInfo, caB.RawSubjectPublicKeyInfo) {
		t.Error("two tokens derived the same CA key")
	}
	if !bytes.Equal(a.GossipKey(), a.GossipKey()) {
		t.Error("one token derived two gossip keys")
	}
	if bytes.Equal(a.GossipKey(), b.GossipKey()) {
		t.Error("two tokens derived the same gossip key")
	}
	if n := len(a.GossipKey()); n != 32 {
		t.Errorf("gossip key of %d bytes, want 32 (AES-256)", n)
	}
	if again, err := Parse(a.Secret()); err != nil || again.Fingerprint() != a.Fingerprint() {
		t.Error("one token has two fingerprints")
	}
	if a.Fingerprint() == b.Fingerprint() {
		t.Error("two tokens have the same fingerprint") // 1 in 2^32
	}
	if !regexp.MustCompile(`^[0-9a-f]{8}$`).MatchString(a.Fingerprint()) {
		t.Errorf("fingerprint %q, want 8 hex digits", a.Fingerprint())
	}
	// The uses are independent: no derived key is another's prefix.
	if strings.HasPrefix(hex.EncodeToString(a.GossipKey()), a.Fingerprint()) {
		t.Error("the fingerprint is a prefix of the gossip key")
	}
}

// What a token derives must never change: nodes built from different
// versions of graft must derive the same keys and CA from one token.
func TestTokenKnownAnswers(t *testing.T) {
	tok := fixedToken()
	ca, _, err := tok.clusterCA()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, got, want string }{
		{"fingerprint", tok.Fingerprint(), "9dd8e404"},
		{"gossip key", hex.EncodeToString(tok.GossipKey()), "1491a75d676c1fcad93c84ca920aac8fecd581da612c548f9bdb4e7dfda139a1"},
		{"CA public key", hex.EncodeToString(ca.PublicKey.(ed25519.PublicKey)), "ff0aeed2a1a20643fee3b3cec759a20f1b1e04dbd6946ad39edba68283d65c7a"},
		{"CA key ID", hex.EncodeToString(ca.SubjectKeyId), "496da095ca9d23eb46388b1eabece18d039b1167"},
		{"CA subject", ca.Subject.String(), "CN=graft cluster key,O=graft"},
	} {
		if tc.got != tc.want {
			t.Errorf("%s = %s, want %s", tc.name, tc.got, tc.want)
		}
	}
}

// plaintextRPC is what a node without the cluster key sends first: the
// cluster port's RPC connection kind ('P') and a one-byte RPC frame.
var plaintextRPC = []byte{'P', 0, 0, 0, 1, 0x80}

// tlsExchange connects a client to a server over loopback: a TLS handshake,
// then the client sends a byte that the server echoes, so each side learns
// the other's verdict. A nil client speaks plaintext, as a node without
// the cluster key would: a connection kind and an RPC frame. It returns
// each side's first error and, on success, the server's view.
func tlsExchange(t *testing.T, server, client *tls.Config) (serverErr, clientErr error, st tls.ConnectionState) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	deadline := time.Now().Add(5 * time.Second)
	type result struct {
		err error
		st  tls.ConnectionState
	}
	done := make(chan result, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- result{err: err}
			return
		}
		defer c.Close()
		_ = c.SetDeadline(deadline)
		tc := tls.Server(c, server)
		if err := tc.Handshake(); err != nil {
			done <- result{err: err}
			return
		}
		var b [1]byte
		if _, err := io.ReadFull(tc, b[:]); err != nil {
			done <- result{err: err}
			return
		}
		_, err = tc.Write(b[:])
		done <- result{err: err, st: tc.ConnectionState()}
	}()
	clientErr = func() error {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			return err
		}
		defer c.Close()
		_ = c.SetDeadline(deadline)
		var rw io.ReadWriter = c
		if client != nil {
			tc := tls.Client(c, client)
			if err := tc.Handshake(); err != nil {
				return err
			}
			rw = tc
		}
		if client == nil {
			if _, err := c.Write(plaintextRPC); err != nil {
				return err
			}
		} else if _, err := rw.Write([]byte{'x'}); err != nil {
			return err
		}
		var b [1]byte
		_, err = io.ReadFull(rw, b[:])
		return err
	}()
	res := <-done
	return res.err, clientErr, res.st
}

func clusterTLS(t *testing.T, tok Token, nodeID string) (server, client *tls.Config) {
	t.Helper()
	server, client, err := tok.ClusterTLS(nodeID)
	if err != nil {
		t.Fatal(err)
	}
	return server, client
}

// Two nodes with one token connect, each with its own certificate, and the
// server sees the client's node ID.
func TestClusterTLSSameToken(t *testing.T) {
	tok := newToken(t)
	server, _ := clusterTLS(t, tok, "server")
	_, client := clusterTLS(t, tok, "client")
	serr, cerr, st := tlsExchange(t, server, client)
	if serr != nil || cerr != nil {
		t.Fatalf("server: %v; client: %v", serr, cerr)
	}
	if st.Version != tls.VersionTLS13 {
		t.Errorf("TLS version %#x, want 1.3", st.Version)
	}
	if len(st.PeerCertificates) != 1 || st.PeerCertificates[0].Subject.CommonName != "client" {
		t.Errorf("server sees peer certificates %v, want one for node client", st.PeerCertificates)
	}
	// A token read back from its text keys the same cluster.
	again, err := Parse(tok.Secret())
	if err != nil {
		t.Fatal(err)
	}
	_, client = clusterTLS(t, again, "client")
	if serr, cerr, _ := tlsExchange(t, server, client); serr != nil || cerr != nil {
		t.Fatalf("parsed token: server: %v; client: %v", serr, cerr)
	}
}

// A peer with another token, or without a certificate, or without TLS, is
// refused; each side checks the other on its own.
func TestClusterTLSRefusesOthers(t *testing.T) {
	ours, theirs := newToken(t), newToken(t)
	server, client := clusterTLS(t, ours, "ours")
	otherServer, otherClient := clusterTLS(t, theirs, "theirs")

	// Only the client's certificate is from another key: the server refuses.
	wrongCert := client.Clone()
	wrongCert.Certificates = otherClient.Certificates
	// Only the server's certificate is from another key: the client refuses.
	wrongServerCert := server.Clone()
	wrongServerCert.Certificates = otherServer.Certificates
	noCert := client.Clone()
	noCert.Certificates = nil
	tls12 := client.Clone()
	tls12.MinVersion, tls12.MaxVersion = tls.VersionTLS12, tls.VersionTLS12

	const (
		unknownCA  = "tls: failed to verify certificate: x509: certificate signed by unknown authority"
		badCert    = "remote error: tls: bad certificate"
		notTLS     = "tls: first record does not look like a TLS handshake"
		noCertSent = "tls: client didn't provide a certificate"
	)
	for _, tc := range []struct {
		name             string
		server           *tls.Config
		client           *tls.Config
		wantServer       string
		wantClient       string
		wantClientAnyErr bool // the plaintext client sees EOF or a reset
	}{
		{name: "client has another key", server: server, client: otherClient, wantServer: badCert, wantClient: unknownCA},
		{name: "server has another key", server: otherServer, client: client, wantServer: badCert, wantClient: unknownCA},
		{name: "client certificate from another key", server: server, client: wrongCert, wantServer: unknownCA, wantClient: "remote error: tls: unknown certificate authority"},
		{name: "server certificate from another key", server: wrongServerCert, client: client, wantServer: badCert, wantClient: unknownCA},
		{name: "client without certificate", server: server, client: noCert, wantServer: noCertSent, wantClient: "remote error: tls: certificate required"},
		{name: "client without TLS", server: server, client: nil, wantServer: notTLS, wantClientAnyErr: true},
		{name: "client with TLS 1.2", server: server, client: tls12, wantServer: "client offered only unsupported versions", wantClient: "remote error: tls: protocol version not supported"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			serr, cerr, _ := tlsExchange(t, tc.server, tc.client)
			t.Logf("server: %v", serr)
			t.Logf("client: %v", cerr)
			if serr == nil || !strings.Contains(serr.Error(), tc.wantServer) {
				t.Errorf("server error %v, want %q", serr, tc.wantServer)
			}
			switch {
			case cerr == nil:
				t.Error("client succeeded")
			case !tc.wantClientAnyErr && !strings.Contains(cerr.Error(), tc.wantClient):
				t.Errorf("client error %v, want %q", cerr, tc.wantClient)
			}
		})
	}
}

func TestLoadOrCreateToken(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "new", "cluster.key")
	tok, created, err := LoadOrCreate(path)
	if err != nil || !created {
		t.Fatalf("LoadOrCreate = %v, %v; want created", created, err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("created with mode %04o, want 0600", perm)
	}
	text, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(text), tok.Secret()+"\n"; got != want {
		t.Errorf("file holds %q, want %q", got, want)
	}
	if leftovers, _ := filepath.Glob(filepath.Join(dir, "new", ".graft-token-*")); len(leftovers) != 0 {
		t.Errorf("temporary files left: %v", leftovers)
	}

	again, created, err := LoadOrCreate(path)
	if err != nil || created {
		t.Fatalf("reload = %v, %v; want loaded", created, err)
	}
	if !again.Equal(tok) {
		t.Error("reload gave another token")
	}

	for _, perm := range []os.FileMode{0o644, 0o640, 0o604, 0o620} {
		if err := os.Chmod(path, perm); err != nil {
			t.Fatal(err)
		}
		_, _, err := LoadOrCreate(path)
		if err == nil {
			t.Fatalf("mode %04o accepted", perm)
		}
		if want := fmt.Sprintf("mode %04o", perm); !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "chmod 600") {
			t.Errorf("error %q does not say %q and how to fix it", err, want)
		}
		if strings.Contains(err.Error(), tok.Secret()) {
			t.Errorf("error %q contains the secret", err)
		}
	}
	if err := os.Chmod(path, 0o400); err != nil {
		t.Fatal(err)
	}
	if _, _, err := LoadOrCreate(path); err != nil {
		t.Errorf("read-only 0400 file refused: %v", err)
	}
}

func TestLoadOrCreateTokenRefusesBadFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	secret := strings.TrimPrefix(newToken(t).Secret(), "graft1_")
	for _, tc := range []struct{ path, want string }{
		{write("empty", ""), "empty"},
		{write("garbage", "not a key "+secret+"\n"), `does not start with "graft1_"`},
		{write("truncated", "graft1_"+secret[:30]+"\n"), "30 characters"},
		{dir, "not a regular file"},
	} {
		_, created, err := LoadOrCreate(tc.path)
		if err == nil || created {
			t.Errorf("%s: created %v, err %v; want an error", tc.path, created, err)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), tc.path) {
			t.Errorf("error %q does not name the file and say %q", err, tc.want)
		}
		if strings.Contains(err.Error(), secret[:8]) {
			t.Errorf("error %q contains the secret", err)
		}
	}
}

// Processes racing to create the token file all end up with one token.
func TestLoadOrCreateTokenConcurrent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cluster.key")
	const n = 8
	toks := make([]Token, n)
	created := make([]bool, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			var err error
			toks[i], created[i], err = LoadOrCreate(path)
			if err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	creators := 0
	for i := range n {
		if created[i] {
			creators++
		}
		if !toks[i].Equal(toks[0]) {
			t.Fatalf("caller %d got another token", i)
		}
	}
	if creators != 1 {
		t.Errorf("%d callers created the file, want 1", creators)
	}
}
