package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/graftcm/graft/cluster"
	"github.com/graftcm/graft/cluster/clusterkey"
)

func newToken(t *testing.T) clusterkey.Token {
	t.Helper()
	tok, err := clusterkey.Generate()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// checkTokenFile checks that the data dir's token file holds tok, mode
// 0600.
func checkTokenFile(t *testing.T, dir string, tok clusterkey.Token) {
	t.Helper()
	p := filepath.Join(dir, tokenFile)
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("%s has mode %04o, want 0600", p, fi.Mode().Perm())
	}
	b, err := os.ReadFile(p)
	if err != nil || string(b) != tok.Secret()+"\n" {
		t.Errorf("%s holds another key (%v)", p, err)
	}
}

// A node that joins nobody makes a key once and keeps it.
func TestFirstNodeMakesItsKey(t *testing.T) {
	dir := t.TempDir()
	k, err := loadClusterKey(clusterOptions{}, dir, "h")
	if err != nil || !k.created {
		t.Fatalf("first start: %+v, %v; want a new key", k, err)
	}
	checkTokenFile(t, dir, k.tok)
	again, err := loadClusterKey(clusterOptions{}, dir, "h")
	if err != nil || again.created || !again.tok.Equal(k.tok) {
		t.Errorf("second start: created %v, same key %v, %v", again.created, again.tok.Equal(k.tok), err)
	}
	// A restart with --join and no --token uses the data dir's key.
	joining, err := loadClusterKey(clusterOptions{join: []string{"10.0.0.1:7946"}}, dir, "h")
	if err != nil || !joining.tok.Equal(k.tok) {
		t.Errorf("restart with --join: %v", err)
	}
}

// --token's key is kept in the data dir; a data dir holding another key
// whose node has had peers is refused, naming fingerprints only and how
// to recover.
func TestTokenFlagIsKept(t *testing.T) {
	dir := t.TempDir()
	tok := newToken(t)
	k, err := loadClusterKey(clusterOptions{token: &tok, join: []string{"x:1"}}, dir, "h")
	if err != nil || k.created || !k.tok.Equal(tok) {
		t.Fatalf("first start with --token: %+v, %v", k, err)
	}
	checkTokenFile(t, dir, tok)
	if _, err := loadClusterKey(clusterOptions{token: &tok}, dir, "h"); err != nil {
		t.Errorf("the same --token again: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, cluster.PeersFile), []byte(`["10.0.0.2:7946"]`), 0o600); err != nil {
		t.Fatal(err)
	}
	other := newToken(t)
	_, err = loadClusterKey(clusterOptions{token: &other}, dir, "h")
	if err == nil {
		t.Fatal("another --token was accepted by a node that had peers")
	}
	msg := err.Error()
	for _, want := range []string{tok.Fingerprint(), other.Fingerprint(), "another --data-dir", "graft leave",
		filepath.Join(dir, "raft"), filepath.Join(dir, cluster.PeersFile)} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q lacks %q", msg, want)
		}
	}
	if strings.Contains(msg, tok.Secret()) || strings.Contains(msg, other.Secret()) {
		t.Errorf("error %q shows a key", msg)
	}
	checkTokenFile(t, dir, tok)
}

// A node told to join, or to bootstrap with others, cannot make a key.
func TestJoiningNeedsTheKey(t *testing.T) {
	_, err := loadClusterKey(clusterOptions{join: []string{"10.0.0.1:7946"}}, t.TempDir(), "h")
	var ee *exitError
	if !errors.Is(err, errNoKey) || !errors.As(err, &ee) || ee.code != exitUsage {
		t.Errorf("--join without a key: %v", err)
	}
	_, err = loadClusterKey(clusterOptions{bootstrapExpect: 3}, t.TempDir(), "h")
	if err == nil || !strings.Contains(err.Error(), "graft keygen") {
		t.Errorf("--bootstrap-expect without a key: %v", err)
	}
}

func TestJoinHint(t *testing.T) {
	tok := newToken(t)
	if got, want := joinHint(clusterOptions{clusterName: "graft"}, "10.0.0.1:7946", tok, true),
		"GRAFT_TOKEN="+tok.Secret()+" graft run --join 10.0.0.1:7946"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if got, want := joinHint(clusterOptions{clusterName: "it's"}, "10.0.0.1:7946", tok, false),
		`GRAFT_TOKEN=<the key> graft run --join 10.0.0.1:7946 --cluster-name 'it'\''s'`; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

// A token file that does not parse says how to recover.
func TestABrokenKeyFileSaysHowToRecover(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, tokenFile), []byte("graft1_truncat\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := loadClusterKey(clusterOptions{}, dir, "h")
	if !errors.Is(err, clusterkey.ErrInvalid) || !strings.Contains(err.Error(), "remove it") ||
		!strings.Contains(err.Error(), "GRAFT_TOKEN") {
		t.Errorf("a broken key file: %v, want the way out", err)
	}
}
