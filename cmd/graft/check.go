package main

import (
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/graftcm/graft/gapi/yamlgraph"
	"github.com/graftcm/graft/resources"
)

func checkCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:      "check",
		Usage:     "validate graph files without running them",
		ArgsUsage: "FILE...",
		Description: "check parses each YAML graph file, validates every resource and looks for cycles,\n" +
			"printing every problem with its file and line. It changes nothing on the host.",
		Action: func(c *cli.Context) error {
			if c.NArg() == 0 {
				return usageError("check: want at least one graph file")
			}
			reg := resources.NewRegistry(resources.Deps{})
			failed := 0
			for _, file := range c.Args().Slice() {
				res, err := yamlgraph.Load(file, reg)
				if err != nil {
					fmt.Fprintln(e.stderr, err)
					failed++
					continue
				}
				for _, w := range res.Warnings {
					fmt.Fprintf(e.stderr, "warning: %s\n", w)
				}
				fmt.Fprintf(e.stdout, "%s: ok (graph %q: %d resources, %d edges)\n",
					file, res.Graph.Name, res.Graph.Len(), len(res.Graph.Edges()))
			}
			if failed > 0 {
				return &exitError{code: 1, err: fmt.Errorf("check: %d of %d files have errors", failed, c.NArg())}
			}
			return nil
		},
	}
}
