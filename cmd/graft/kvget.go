package main

import (
	"context"
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/graftcm/graft/api"
)

func kvGetCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:      "get",
		Usage:     "print a key's value",
		ArgsUsage: "KEY",
		Description: "get prints the value of KEY as it is, then a newline. It exits 1 if the key does\n" +
			"not exist.\n\n" + staleNote(),
		Flags: append(clientFlags(), linearizableFlag()),
		Action: func(c *cli.Context) error {
			key, err := oneArg(c, "key")
			if err != nil {
				return err
			}
			return withClient(c, func(ctx context.Context, client *api.Client) error {
				var info api.ReadInfo
				kv, ok, err := client.Get(ctx, key, readOptions(c, &info)...)
				if err == nil {
					warnIfStaleRead(e, c, info.Contact)
				}
				switch {
				case err != nil:
					return err
				case !ok:
					return fmt.Errorf("key %q not found", key)
				}
				_, err = fmt.Fprintf(e.stdout, "%s\n", kv.Value)
				return err
			})
		},
	}
}
