package main

import (
	"errors"
	"net"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/graftcm/graft/api/apitest"
	apiserver "github.com/graftcm/graft/api/server"
)

func TestJoinCommand(t *testing.T) {
	fc := &apitest.FakeCluster{}
	sock, _, _ := testAPIWith(t, func(c *apiserver.Config) { c.Cluster = fc })
	code, stdout, stderr := graft(t, "join", "--api", sock, "10.0.0.2:7946", "10.0.0.3:7946")
	if code != 0 || stdout != "joined the cluster: 2 node(s) answered\n" {
		t.Errorf("join: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	if want := [][]string{{"10.0.0.2:7946", "10.0.0.3:7946"}}; !reflect.DeepEqual(fc.Joined(), want) {
		t.Errorf("the agent was asked to join %q, want %q", fc.Joined(), want)
	}

	if code, _, stderr := graft(t, "join", "--api", sock); code != exitUsage || !strings.Contains(stderr, "gossip address") {
		t.Errorf("join without addresses: exit %d, stderr %q", code, stderr)
	}

	fc.JoinErr = errors.New("failed to join 10.0.0.9:7946: no installed keys could decrypt the message")
	code, _, stderr = graft(t, "join", "--api", sock, "10.0.0.9:7946")
	if code != 1 || !strings.Contains(stderr, "could decrypt") || !strings.Contains(stderr, "cluster's key") {
		t.Errorf("a failed join: exit %d, stderr %q", code, stderr)
	}
}

// A join that no address answers fails with one line per address, each
// naming it, not go-multierror's "2 errors occurred:" and tab-indented
// list.
func TestJoinErrorPrintsOneCleanLinePerCause(t *testing.T) {
	data := filepath.Join(t.TempDir(), "d")
	a := startTestAgent(t, data, "h1")
	dead := []string{closedPort(t), closedPort(t)}
	code, stdout, stderr := graft(t, append([]string{"join", "--data-dir", data}, dead...)...)
	if code != 1 || stdout != "" {
		t.Errorf("join of two closed ports: exit %d, stdout %q; want 1 and nothing", code, stdout)
	}
	if strings.Contains(stderr, "occurred") || strings.Contains(stderr, "\t") {
		t.Errorf("go-multierror's layout in the message: %q", stderr)
	}
	lines := strings.Split(strings.TrimSuffix(stderr, "\n"), "\n")
	for _, l := range lines {
		if !strings.HasPrefix(l, "graft: ") || strings.TrimSpace(strings.TrimPrefix(l, "graft: ")) == "" {
			t.Errorf("line %q: want a message after \"graft: \"", l)
		}
	}
	for _, addr := range dead {
		n := 0
		for _, l := range lines {
			if strings.Contains(l, "failed to join "+addr+":") {
				n++
			}
		}
		if n != 1 {
			t.Errorf("%d lines name the failure of %s, want 1: %q", n, addr, stderr)
		}
	}
	if len(lines) != len(dead) {
		t.Errorf("%d lines for %d causes: %q", len(lines), len(dead), stderr)
	}
	a.stop()
}

// closedPort returns a loopback address where nothing listens: a port
// the system just gave a listener, now closed.
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}
