package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/graftcm/graft/api"
	"github.com/graftcm/graft/gapi/yamlgraph"
	"github.com/graftcm/graft/resources"
	"github.com/graftcm/graft/world"
)

func deployCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:  "deploy",
		Usage: "store graphs in the cluster for every host that follows deploys to run",
		Description: "deploy stores a graph in the cluster as a numbered deploy. Every host running\n" +
			"`graft run empty` (or `graft run --deploys`) runs the newest deploy, and swaps to a\n" +
			"newer one as soon as it is stored. The newest 100 are kept: `deploy list` shows them and\n" +
			"`deploy rollback N` makes deploy N's graph the newest again, as a new deploy.",
		Subcommands: []*cli.Command{deployYAMLCommand(e), deployListCommand(e), deployRollbackCommand(e)},
	}
}

func deployYAMLCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:      "yaml",
		Usage:     "validate a graph file and store it as the newest deploy",
		ArgsUsage: "FILE",
		Description: "yaml validates FILE as `graft check` does (a templated graph is expanded for this\n" +
			"host to check it) and, if it has no errors, stores it as the newest deploy and prints\n" +
			"its number. Nothing is stored if it has errors. The graph is stored as written: a\n" +
			"templated graph is expanded by each host for itself.",
		Flags: clientFlags(),
		Action: func(c *cli.Context) error {
			file, err := oneArg(c, "graph file")
			if err != nil {
				return err
			}
			// Read once: what is checked is what is stored.
			graph, err := readGraphFile(file)
			if err != nil {
				return err
			}
			res, err := yamlgraph.Parse(file, graph, resources.NewRegistry(resources.Deps{}))
			if err != nil {
				fmt.Fprintln(e.stderr, err)
				return &exitError{code: 1, err: fmt.Errorf("deploy: %s has errors: nothing deployed", file)}
			}
			for _, w := range res.Warnings {
				fmt.Fprintf(e.stderr, "warning: %s\n", w)
			}
			return withClient(c, func(ctx context.Context, client *api.Client) error {
				n, err := client.Deploy(ctx, file, graph)
				if err != nil {
					return fmt.Errorf("deploy: %w", err)
				}
				_, err = fmt.Fprintf(e.stdout, "%s: deployed as deploy %d (graph %q: %d resources, %d edges)\n",
					file, n, res.Graph.Name, res.Graph.Len(), len(res.Graph.Edges()))
				return err
			})
		},
	}
}

// readGraphFile reads a graph file to deploy, refusing one larger than a
// deploy may be.
func readGraphFile(file string) ([]byte, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, fmt.Errorf("deploy: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, world.MaxDeploySize+1))
	if err != nil {
		return nil, fmt.Errorf("deploy: %w", err)
	}
	if len(data) > world.MaxDeploySize {
		return nil, fmt.Errorf("deploy: %s has more than the %d bytes a deploy may hold", file, world.MaxDeploySize)
	}
	return data, nil
}

func deployListCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:  "list",
		Usage: "list the deploys",
		Description: "list prints every deploy, oldest first: its number, when and on which host it was\n" +
			"made, the file it came from, its size and what it rolls back to. The current one (the\n" +
			"newest, which hosts following deploys run) is marked with *. With --json it prints the\n" +
			"API's answer.",
		Flags: append(clientFlags(), jsonFlag()),
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return usageError("deploy list: unexpected argument %q", c.Args().First())
			}
			return withClient(c, func(ctx context.Context, client *api.Client) error {
				l, err := client.Deploys(ctx)
				if err != nil {
					return err
				}
				if c.Bool("json") {
					b, err := json.MarshalIndent(l, "", "  ")
					if err != nil {
						return err
					}
					_, err = fmt.Fprintf(e.stdout, "%s\n", b)
					return err
				}
				return printDeploys(e.stdout, l.Deploys)
			})
		},
	}
}

// printDeploys prints deploys as an aligned table.
func printDeploys(w io.Writer, ds []api.DeployInfo) error {
	if len(ds) == 0 {
		_, err := fmt.Fprintln(w, "no deploys")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "\tDEPLOY\tTIME\tHOST\tORIGIN\tSIZE\tNOTE")
	for _, d := range ds {
		mark, note := "", ""
		if d.Current {
			mark = "*"
		}
		if d.RollbackOf != 0 {
			note = fmt.Sprintf("rollback to %d", d.RollbackOf)
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%d\t%s\n", mark, d.Number, d.Time.UTC().Format(time.RFC3339),
			d.Host, d.Origin, d.Size, note)
	}
	return tw.Flush()
}

func deployRollbackCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:      "rollback",
		Usage:     "make an older deploy's graph the newest again",
		ArgsUsage: "N",
		Description: "rollback stores deploy N's graph again as a new deploy, numbered next, noting that it\n" +
			"rolls back to N. Every host following deploys then runs it; the history stays as it\n" +
			"was, so a rollback can itself be rolled back.",
		Flags: clientFlags(),
		Action: func(c *cli.Context) error {
			arg, err := oneArg(c, "deploy number")
			if err != nil {
				return err
			}
			n, err := strconv.ParseUint(arg, 10, 64)
			if err != nil || n == 0 {
				return usageError("deploy rollback: %q is not a deploy number (see graft deploy list)", arg)
			}
			return withClient(c, func(ctx context.Context, client *api.Client) error {
				m, err := client.Rollback(ctx, n)
				if err != nil {
					return fmt.Errorf("deploy rollback: %w", err)
				}
				_, err = fmt.Fprintf(e.stdout, "rolled back to deploy %d: deploy %d holds its graph\n", n, m)
				return err
			})
		},
	}
}
