package main

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/graftcm/graft/api"
	"github.com/graftcm/graft/api/apitest"
)

func TestJoinCommand(t *testing.T) {
	fc := &apitest.FakeCluster{}
	sock, _, _ := testAPIWith(t, func(c *api.Config) { c.Cluster = fc })
	code, stdout, stderr := graft(t, "join", "--api", sock, "10.0.0.2:7946", "10.0.0.3:7946")
	if code != 0 || stdout != "joined the cluster: 2 node(s) answered\n" {
		t.Errorf("join: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	if want := [][]string{{"10.0.0.2:7946", "10.0.0.3:7946"}}; !reflect.DeepEqual(fc.Joined(), want) {
		t.Errorf("the agent was asked to join %q, want %q", fc.Joined(), want)
	}

	if code, _, stderr := graft(t, "join", "--api", sock); code != 2 || !strings.Contains(stderr, "gossip address") {
		t.Errorf("join without addresses: exit %d, stderr %q", code, stderr)
	}

	fc.JoinErr = errors.New("failed to join 10.0.0.9:7946: no installed keys could decrypt the message")
	code, _, stderr = graft(t, "join", "--api", sock, "10.0.0.9:7946")
	if code != 1 || !strings.Contains(stderr, "could decrypt") || !strings.Contains(stderr, "cluster's key") {
		t.Errorf("a failed join: exit %d, stderr %q", code, stderr)
	}
}
