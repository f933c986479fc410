package main

import (
	"context"
	"fmt"
	"io"

	"github.com/urfave/cli/v2"

	"github.com/graftcm/graft/api"
	"github.com/graftcm/graft/fsm"
)

func kvPutCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:      "put",
		Usage:     "set a key's value",
		ArgsUsage: "KEY VALUE",
		Description: "put sets KEY to VALUE. A VALUE of - reads the value from standard input, byte for\n" +
			"byte (a trailing newline included).\n\n" + casNote("put", "written"),
		Flags: append(clientFlags(), casFlag()),
		Action: func(c *cli.Context) error {
			if c.NArg() != 2 {
				return usageError("kv put: want a key and a value, got %d arguments", c.NArg())
			}
			key, value := c.Args().Get(0), []byte(c.Args().Get(1))
			if string(value) == "-" {
				var err error
				if value, err = readValue(e.stdin); err != nil {
					return err
				}
			}
			return withClient(c, func(ctx context.Context, client *api.Client) error {
				if !c.IsSet("cas") {
					_, err := client.Put(ctx, key, value)
					return err
				}
				cas := c.Uint64("cas")
				a, err := client.PutCAS(ctx, key, value, cas)
				return casOutcome(key, cas, a, err, "written")
			})
		},
	}
}

// readValue reads a value from r, refusing one larger than a value can be.
func readValue(r io.Reader) ([]byte, error) {
	v, err := io.ReadAll(io.LimitReader(r, fsm.MaxValueSize+1))
	if err != nil {
		return nil, fmt.Errorf("reading the value from standard input: %w", err)
	}
	if len(v) > fsm.MaxValueSize {
		return nil, fmt.Errorf("the value on standard input is larger than %d bytes", fsm.MaxValueSize)
	}
	return v, nil
}
