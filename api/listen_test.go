package api

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestListenUnixCreatesSocketMode0600(t *testing.T) {
	p := filepath.Join(t.TempDir(), "graft.sock")
	ln, err := ListenUnix(p)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Type() != os.ModeSocket || fi.Mode().Perm() != 0o600 {
		t.Errorf("socket mode %v, want a socket with 0600", fi.Mode())
	}
	ln.Close()
	if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket file left after Close: %v", err)
	}
}

// A socket left by a killed agent is replaced; one something answers on
// is not, and neither is a file that is not a socket.
func TestListenUnixStaleSocket(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "graft.sock")

	stale, err := net.ListenUnix("unix", &net.UnixAddr{Name: p, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	stale.SetUnlinkOnClose(false) // as if the agent had been killed
	stale.Close()
	ln, err := ListenUnix(p)
	if err != nil {
		t.Fatalf("a stale socket was not replaced: %v", err)
	}
	defer ln.Close()

	if _, err := ListenUnix(p); err == nil || !strings.Contains(err.Error(), "already answers") {
		t.Errorf("listening on a live socket: %v, want an error saying something answers", err)
	}
	if _, err := net.Dial("unix", p); err != nil {
		t.Errorf("the live socket was disturbed: %v", err)
	}

	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, []byte("keep me"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ListenUnix(file); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Errorf("listening over a regular file: %v", err)
	}
	if b, _ := os.ReadFile(file); string(b) != "keep me" {
		t.Error("the regular file was removed")
	}

	long := filepath.Join(dir, strings.Repeat("d", 120), "graft.sock")
	if _, err := ListenUnix(long); err == nil || !strings.Contains(err.Error(), "shorter data dir") {
		t.Errorf("listening on a %d-byte path: %v", len(long), err)
	}
}

func TestListenTCPOnlyLoopback(t *testing.T) {
	for _, addr := range []string{"127.0.0.1:0", "localhost:0", "[::1]:0"} {
		ln, err := ListenTCP(addr)
		if err != nil {
			if addr == "[::1]:0" && strings.Contains(err.Error(), "cannot assign") {
				continue // no IPv6 here
			}
			t.Errorf("%s: %v", addr, err)
			continue
		}
		ln.Close()
	}
	for _, addr := range []string{"0.0.0.0:0", ":0", "[::]:0", "192.0.2.1:7948", "example.com:7948"} {
		ln, err := ListenTCP(addr)
		if err == nil {
			ln.Close()
			t.Errorf("%s: listening, want a refusal", addr)
			continue
		}
		if !strings.Contains(err.Error(), "not a loopback address") {
			t.Errorf("%s: %v, want an error saying it is not loopback", addr, err)
		}
	}
	if _, err := ListenTCP("127.0.0.1"); err == nil {
		t.Error("an address without a port was accepted")
	}
}
