package main

import (
	"context"

	"github.com/urfave/cli/v2"

	"github.com/graftcm/graft/api"
)

func kvDelCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:        "del",
		Aliases:     []string{"delete"},
		Usage:       "delete a key",
		ArgsUsage:   "KEY",
		Description: "del deletes KEY. Deleting a key that does not exist is not an error.",
		Flags:       clientFlags(),
		Action: func(c *cli.Context) error {
			key, err := oneArg(c, "key")
			if err != nil {
				return err
			}
			return withClient(c, func(ctx context.Context, client *api.Client) error {
				_, err := client.Delete(ctx, key)
				return err
			})
		},
	}
}
