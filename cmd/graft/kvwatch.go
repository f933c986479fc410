package main

import (
	"encoding/json"
	"fmt"
	"io"

	"github.com/urfave/cli/v2"

	"github.com/graftcm/graft/api"
)

func kvWatchCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:      "watch",
		Usage:     "print every change under a prefix as it happens",
		ArgsUsage: "[PREFIX]",
		Description: "watch follows the keys starting with PREFIX (all keys if none) until interrupted,\n" +
			"printing one line per change:\n\n" +
			"   PUT key=value rev=N\n" +
			"   DEL key rev=N\n\n" +
			"If the agent no longer has the changes since the watch's last revision (it fell\n" +
			"behind, or the node installed a snapshot), it prints RESYNC rev=N and then every key\n" +
			"under the prefix as `key=value` lines, the state to start again from. Values are\n" +
			"printed as by `kv list`. With --json it prints the API's stream objects, one a line,\n" +
			"starting with {\"start\":true,\"rev\":N,...}. A --rev ahead of the cluster's revision\n" +
			"is refused.\n\n" +
			"The changes come from the agent's copy of the state. If the agent's node has not heard\n" +
			"from a cluster leader for more than " + staleAfter.String() + " when the watch starts, a warning on stderr says\n" +
			"so: changes made on other nodes reach the watch only once it does again.",
		Flags: append(clientFlags(), jsonFlag(),
			&cli.Uint64Flag{Name: "rev", Usage: "report the changes after revision `N` (as `graft status` or `kv list --json` print it); 0 means from now"}),
		Action: func(c *cli.Context) error {
			if c.NArg() > 1 {
				return usageError("kv watch: want at most one prefix, got %d arguments", c.NArg())
			}
			client, target, err := dialAgent(c)
			if err != nil {
				return err
			}
			defer client.Close()
			w, err := client.Watch(c.Context, c.Args().First(), c.Uint64("rev"))
			if err != nil {
				if c.Context.Err() != nil {
					return nil // interrupted
				}
				return target.explain(err)
			}
			defer w.Close()
			warnIfStale(e, w.Contact(), "changes made on other nodes reach this watch only once it hears from one again")
			show := printWatchEvent
			if c.Bool("json") {
				show = printJSONLine
				if err := printJSON(e.stdout, struct {
					api.WatchEvent
					*api.Contact
				}{api.WatchEvent{Start: true, Rev: w.Rev()}, w.Contact()}); err != nil {
					return err
				}
			}
			for ev, err := range w.Events() {
				if err != nil {
					if c.Context.Err() != nil {
						return nil // interrupted: the normal way to stop
					}
					return err
				}
				if err := show(e.stdout, ev); err != nil {
					return err
				}
			}
			return nil
		},
	}
}

// printWatchEvent prints an event's lines.
func printWatchEvent(w io.Writer, ev api.WatchEvent) error {
	if ev.Resync {
		if _, err := fmt.Fprintf(w, "RESYNC rev=%d\n", ev.Rev); err != nil {
			return err
		}
		for _, kv := range ev.State {
			if _, err := fmt.Fprintf(w, "%s=%s\n", kv.Key, formatValue(kv.Value)); err != nil {
				return err
			}
		}
	}
	for _, x := range ev.Events {
		var err error
		if x.Type == api.EventDelete {
			_, err = fmt.Fprintf(w, "DEL %s rev=%d\n", x.KV.Key, x.KV.ModRev)
		} else {
			_, err = fmt.Fprintf(w, "PUT %s=%s rev=%d\n", x.KV.Key, formatValue(x.KV.Value), x.KV.ModRev)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// printJSONLine prints an event as one line of JSON.
func printJSONLine(w io.Writer, ev api.WatchEvent) error { return printJSON(w, ev) }

// printJSON prints v as one line of JSON.
func printJSON(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}
