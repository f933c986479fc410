package main

import (
	"context"
	"errors"
	"strings"
	"testing"

	apiserver "github.com/graftcm/graft/api/server"
)

// graft leave returns once the agent has left and its API has stopped
// answering.
func TestLeaveCommandWaitsForTheAgentToStop(t *testing.T) {
	var stop func()
	asked := make(chan struct{}, 1)
	sock, _, stop := testAPIWith(t, func(c *apiserver.Config) {
		c.Leave = func(context.Context) error {
			asked <- struct{}{}
			go stop() // the agent stops after answering
			return nil
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

// graft leave printed "has left and stopped" and exited 0 when the
// leader refused the leave: it says why and exits 1.
func TestLeaveCommandReportsARefusedLeave(t *testing.T) {
	sock, _, _ := testAPIWith(t, func(c *apiserver.Config) {
		c.Leave = func(context.Context) error {
			return errors.New("cluster: leave of h1: removing it would leave the voters without a quorum")
		}
	})
	code, stdout, stderr := graft(t, "leave", "--api", sock)
	if code != 1 || !strings.Contains(stderr, "without a quorum") || strings.Contains(stdout, "has left") {
		t.Errorf("leave: exit %d, stdout %q, stderr %q; want exit 1 and the reason", code, stdout, stderr)
	}
}

// An agent that takes the request but does not leave within --wait is
// reported.
func TestLeaveCommandGivesUpWaiting(t *testing.T) {
	sock, _, _ := testAPIWith(t, func(c *apiserver.Config) {
		c.Leave = func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }
	})
	code, _, stderr := graft(t, "leave", "--api", sock, "--wait", "300ms")
	if code != 1 || !strings.Contains(stderr, "has not left after 300ms") {
		t.Errorf("leave: exit %d, stderr %q", code, stderr)
	}
}
