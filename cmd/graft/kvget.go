package main

import (
	"context"
	"fmt"
	"io"

	"github.com/urfave/cli/v2"

	"github.com/graftcm/graft/api"
)

func kvGetCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:      "get",
		Usage:     "print a key's value",
		ArgsUsage: "KEY",
		Description: "get prints the value of KEY byte for byte, adding nothing: `graft kv get k > f`\n" +
			"writes exactly what `graft kv put k - < f` stored. Only on a terminal, a value that\n" +
			"does not end its line is followed by a newline, so that the prompt starts on a line of\n" +
			"its own. It exits 1 if the key does not exist.\n\n" + staleNote(),
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
				return printValue(e.stdout, kv.Value)
			})
		},
	}
}

// printValue writes v to w as it is. On a terminal, which shows the text
// rather than keeping the bytes, it ends a last line that v leaves open.
func printValue(w io.Writer, v []byte) error {
	if _, err := w.Write(v); err != nil {
		return err
	}
	if len(v) > 0 && v[len(v)-1] != '\n' && isTerminal(w) {
		_, err := io.WriteString(w, "\n")
		return err
	}
	return nil
}
