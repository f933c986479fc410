package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/graftcm/graft/api"
	"github.com/graftcm/graft/cluster/clusterkey"
)

// joinPoll is how often `graft join` checks whether an agent that
// restarted its cluster side to join is in.
const joinPoll = 100 * time.Millisecond

func joinCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:      "join",
		Usage:     "join the local agent to a cluster",
		ArgsUsage: "ADDR...",
		Description: "join asks the agent running on this host to join the cluster of the nodes at the\n" +
			"gossip addresses ADDR (HOST:PORT, a member's gossip_address in `graft status`); one\n" +
			"that answers is enough. The agent must hold the cluster's key: nodes with another key\n" +
			"do not answer. Once in, the cluster's leader adds this node as a non-voter, and\n" +
			"promotes it when the cluster needs a voter.\n\n" +
			"A node that never had a peer may join another cluster: given the cluster's key\n" +
			"(--token, or GRAFT_TOKEN) it adopts it, and it sets its own one-node cluster aside,\n" +
			"in a directory of its data dir, when the nodes at ADDR belong to another cluster; its\n" +
			"keys are not copied into the cluster it joins. It then restarts its cluster side, and\n" +
			"join waits, at most --wait, until it is in. A node that had peers refuses both; an\n" +
			"agent takes either over its unix socket only (not --api http://...).",
		Flags: append(clientFlags(),
			&cli.StringFlag{Name: "token", EnvVars: []string{"GRAFT_TOKEN"},
				Usage: "the key of the cluster to join, `KEY`, for a node that never had a peer to adopt. " +
					"Prefer GRAFT_TOKEN: the command line is visible to other users"},
			&cli.DurationFlag{Name: "wait", Value: clientTimeout,
				Usage: "how long to wait for an agent that restarts its cluster side to join"}),
		Action: func(c *cli.Context) error {
			if c.NArg() == 0 {
				return usageError("join: want the gossip address of at least one member (HOST:PORT)")
			}
			req := api.JoinRequest{Addrs: c.Args().Slice()}
			if text := c.String("token"); text != "" {
				tok, err := clusterkey.Parse(text) // its errors never hold the text
				if err != nil {
					return usageError("--token (or GRAFT_TOKEN): %v", err)
				}
				req.Token = tok.Secret()
			}
			return withClient(c, func(ctx context.Context, client *api.Client) error {
				before, err := client.Status(ctx)
				if err != nil {
					return err
				}
				res, err := client.JoinWith(ctx, req)
				switch {
				case api.StatusCode(err) == http.StatusConflict, api.StatusCode(err) == http.StatusForbidden:
					return fmt.Errorf("join: %w", err) // the agent says what to do
				case err != nil:
					return fmt.Errorf("join: %w (are the addresses members' gossip ports, and does this agent hold the cluster's key?)", err)
				case !res.Restarting:
					_, err = fmt.Fprintf(e.stdout, "joined the cluster: %d node(s) answered\n", res.Joined)
					return err
				}
				printRestart(e.stdout, res)
				// The restart closes the API the client talks to: wait
				// with a context of our own, --wait long.
				wctx, cancel := context.WithTimeout(c.Context, c.Duration("wait"))
				defer cancel()
				return waitJoined(wctx, e.stdout, client, before.ClusterID, res, c.Duration("wait"))
			})
		},
	}
}

// printRestart says what an agent that restarts its cluster side to join
// does.
func printRestart(w io.Writer, res api.JoinResult) {
	if res.KeyFingerprint != "" {
		fmt.Fprintf(w, "this node never had a peer: it adopts the key given (fingerprint %s) and restarts its cluster side to join\n",
			res.KeyFingerprint)
	}
	if res.OtherCluster != "" {
		fmt.Fprintf(w, "this node never had a peer: it sets its own one-node cluster aside to join cluster %s, "+
			"and restarts its cluster side\n", res.OtherCluster)
		keys := fmt.Sprintf("its %d key(s) are", res.SetAsideKeys)
		if res.SetAsideKeys < 0 {
			keys = "its keys are"
		}
		if res.SetAside != "" {
			fmt.Fprintf(w, "%s not copied into that cluster; they stay in %s, a data dir an agent can run on\n",
				keys, res.SetAside)
		}
	}
}

// waitJoined waits until the agent, restarting to join, sees another
// node alive, and says so (wait is what ctx allows). An agent that ended
// up in another cluster than its own says where its own was set aside.
func waitJoined(ctx context.Context, w io.Writer, client *api.Client, ownID string, res api.JoinResult, wait time.Duration) error {
	tick := time.NewTicker(joinPoll)
	defer tick.Stop()
	for {
		// A fresh connection each time: the agent's API restarts.
		client.Close()
		if n, id := othersAlive(ctx, client); n > 0 {
			fmt.Fprintf(w, "joined the cluster: the agent sees %d other node(s)\n", n)
			if id != "" && ownID != "" && id != ownID && res.OtherCluster == "" {
				fmt.Fprintf(w, "its own one-node cluster (%s) was set aside to join cluster %s: the agent's log says where\n", ownID, id)
			}
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the agent restarted its cluster side but is not in the cluster after %v: see its log", wait)
		case <-tick.C:
		}
	}
}

// othersAlive returns how many other nodes the agent sees alive, and its
// cluster ID; 0 while it does not answer.
func othersAlive(ctx context.Context, client *api.Client) (int, string) {
	st, err := client.Status(ctx)
	if err != nil {
		return 0, ""
	}
	ms, err := client.Members(ctx)
	if err != nil {
		return 0, ""
	}
	n := 0
	for _, m := range ms {
		if m.Name != st.ID && m.Gossip == "alive" {
			n++
		}
	}
	return n, st.ClusterID
}
