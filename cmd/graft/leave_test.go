package main

import (
	"strings"
	"testing"

	"github.com/graftcm/graft/api"
)

// graft leave returns once the agent's API has stopped answering.
func TestLeaveCommandWaitsForTheAgentToStop(t *testing.T) {
	var stop func()
	asked := make(chan struct{}, 1)
	sock, _, stop := testAPIWith(t, func(c *api.Config) {
		c.Leave = func() {
			asked <- struct{}{}
			go stop() // the agent stops after answering
		}
	})
	code, stdout, stderr := graft(t, "leave", "--api", sock)
	if code != 0 || stdout != "the agent is leaving the cluster\nthe agent has left and stopped\n" {
		t.Errorf("leave: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	select {
	case <-asked:
	default:
		t.Error("the agent was not asked to leave")
	}
}

// An agent that takes the request but does not stop within --wait is
// reported.
func TestLeaveCommandGivesUpWaiting(t *testing.T) {
	sock, _, _ := testAPIWith(t, func(c *api.Config) { c.Leave = func() {} })
	code, _, stderr := graft(t, "leave", "--api", sock, "--wait", "300ms")
	if code != 1 || !strings.Contains(stderr, "still runs after 300ms") {
		t.Errorf("leave: exit %d, stderr %q", code, stderr)
	}
}
