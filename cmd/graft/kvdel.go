package main

import (
	"context"

	"github.com/urfave/cli/v2"

	"github.com/graftcm/graft/api"
)

func kvDelCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:      "del",
		Aliases:   []string{"delete"},
		Usage:     "delete a key",
		ArgsUsage: "KEY",
		Description: "del deletes KEY. Deleting a key that does not exist is not an error.\n\n" +
			casNote("del", "deleted") + "\n--cas 0 deletes nothing: it succeeds only if the key does not exist.",
		Flags: append(clientFlags(), casFlag()),
		Action: func(c *cli.Context) error {
			key, err := oneArg(c, "key")
			if err != nil {
				return err
			}
			return withClient(c, func(ctx context.Context, client *api.Client) error {
				if !c.IsSet("cas") {
					_, err := client.Delete(ctx, key)
					return err
				}
				cas := c.Uint64("cas")
				a, err := client.DeleteCAS(ctx, key, cas)
				return casOutcome(key, cas, a, err, "deleted")
			})
		},
	}
}
