package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/graftcm/graft/api"
)

// leavePoll is how often `graft leave` checks whether the agent has
// stopped.
const leavePoll = 100 * time.Millisecond

func leaveCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:  "leave",
		Usage: "make the local agent leave its cluster and stop",
		Description: "leave asks the agent running on this host to leave its cluster gracefully and stop,\n" +
			"as the first SIGINT or SIGTERM does: running resources finish, then the cluster's\n" +
			"leader takes the node out of raft and releases its semaphore slots at once (a node\n" +
			"that just dies keeps its raft seat for a grace period). leave waits until the agent\n" +
			"has stopped, at most --wait.",
		Flags: append(clientFlags(),
			&cli.DurationFlag{Name: "wait", Value: 30 * time.Second, Usage: "wait at most this long for the agent to stop"}),
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return usageError("leave: unexpected argument %q", c.Args().First())
			}
			client, target, err := dialAgent(c)
			if err != nil {
				return err
			}
			defer client.Close()
			wait := c.Duration("wait")
			ctx, cancel := context.WithTimeout(c.Context, wait)
			defer cancel()
			accepted := false
			err = client.Leave(ctx, func() {
				accepted = true
				fmt.Fprintln(e.stdout, "the agent is leaving the cluster")
			})
			switch {
			case errors.Is(err, api.ErrLeaveFailed):
				return fmt.Errorf("%w; it stops anyway, and keeps its raft seat until the cluster can remove it", err)
			case ctx.Err() != nil && c.Context.Err() == nil && accepted:
				return fmt.Errorf("the agent took the request but has not left after %v (running resources finish first); "+
					"it leaves and stops once they do", wait)
			case ctx.Err() != nil && c.Context.Err() == nil:
				return fmt.Errorf("the agent did not take the request within %v", wait)
			case err != nil:
				return target.explain(err)
			}
			// The same --wait bounds the whole command.
			if err := waitStopped(ctx, client, wait); err != nil {
				return err
			}
			_, err = fmt.Fprintln(e.stdout, "the agent has left and stopped")
			return err
		},
	}
}

// waitStopped waits until the agent's API stops answering or ctx ends
// (wait is what the message says ctx allowed).
func waitStopped(ctx context.Context, client *api.Client, wait time.Duration) error {
	tick := time.NewTicker(leavePoll)
	defer tick.Stop()
	for {
		// A fresh connection each time: an idle one may outlive the
		// agent's listener.
		client.Close()
		_, err := client.Status(ctx)
		switch {
		case errors.Is(err, api.ErrNoAgent):
			return nil
		case ctx.Err() != nil:
			return fmt.Errorf("the agent took the request but still runs after %v (running resources finish first); "+
				"it stops once they do", wait)
		}
		select {
		case <-ctx.Done():
		case <-tick.C:
		}
	}
}
