package main

import (
	"context"
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/graftcm/graft/api"
)

func joinCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:      "join",
		Usage:     "join the local agent to a cluster",
		ArgsUsage: "ADDR...",
		Description: "join asks the agent running on this host to join the cluster of the nodes at the\n" +
			"gossip addresses ADDR (HOST:PORT, a member's gossip_address in `graft status`); one\n" +
			"that answers is enough. The agent must hold the cluster's key (graft run --token):\n" +
			"nodes with another key do not answer. Once in, the cluster's leader adds this node as\n" +
			"a non-voter, and promotes it when the cluster needs a voter.",
		Flags: clientFlags(),
		Action: func(c *cli.Context) error {
			if c.NArg() == 0 {
				return usageError("join: want the gossip address of at least one member (HOST:PORT)")
			}
			return withClient(c, func(ctx context.Context, client *api.Client) error {
				n, err := client.Join(ctx, c.Args().Slice())
				if err != nil {
					return fmt.Errorf("join: %w (are the addresses members' gossip ports, and does this agent hold the cluster's key?)", err)
				}
				_, err = fmt.Fprintf(e.stdout, "joined the cluster: %d node(s) answered\n", n)
				return err
			})
		},
	}
}
