package main

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/graftcm/graft/api"
)

func kvListCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:      "list",
		Aliases:   []string{"ls"},
		Usage:     "list the keys under a prefix",
		ArgsUsage: "[PREFIX]",
		Description: "list prints every key starting with PREFIX (all keys if none), sorted, one\n" +
			"`key=value` line each. A value that is not one line of printable text (a tab is not\n" +
			"printable), or that starts with a double quote, is printed Go-quoted (\"a\\tb\"). With\n" +
			"--json it prints the API's answer: {\"rev\": N, \"kvs\": [...], ...}.\n\n" +
			staleNote(),
		Flags: append(clientFlags(), linearizableFlag(), jsonFlag()),
		Action: func(c *cli.Context) error {
			if c.NArg() > 1 {
				return usageError("kv list: want at most one prefix, got %d arguments", c.NArg())
			}
			return withClient(c, func(ctx context.Context, client *api.Client) error {
				var info api.ReadInfo
				kvs, rev, err := client.List(ctx, c.Args().First(), readOptions(c, &info)...)
				if err != nil {
					return err
				}
				warnIfStaleRead(e, c, info.Contact)
				if c.Bool("json") {
					b, err := json.Marshal(struct {
						api.List
						*api.Contact
					}{api.List{Rev: rev, KVs: kvs}, info.Contact})
					if err != nil {
						return err
					}
					_, err = fmt.Fprintf(e.stdout, "%s\n", b)
					return err
				}
				return printKVs(e, kvs)
			})
		},
	}
}

// printKVs prints `key=value` lines.
func printKVs(e *env, kvs []api.KV) error {
	for _, kv := range kvs {
		if _, err := fmt.Fprintf(e.stdout, "%s=%s\n", kv.Key, formatValue(kv.Value)); err != nil {
			return err
		}
	}
	return nil
}
