package main

import (
	"fmt"

	"github.com/graftcm/graft/cluster/clusterkey"
	"github.com/urfave/cli/v2"
)

func keygenCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:  "keygen",
		Usage: "print a new cluster key",
		Description: "keygen prints a new random cluster key, for nodes that start a cluster together\n" +
			"(graft run --bootstrap-expect N --token KEY) and so cannot take the key of a first\n" +
			"node. Keep it secret: whoever has it can join the cluster, read and write. A node\n" +
			"that starts a cluster alone makes its own key and needs none.",
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return usageError("keygen: unexpected argument %q", c.Args().First())
			}
			tok, err := clusterkey.Generate()
			if err != nil {
				return err
			}
			_, err = fmt.Fprintln(e.stdout, tok.Secret())
			return err
		},
	}
}
