package main

import (
	"context"
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/graftcm/graft/api"
	"github.com/graftcm/graft/engine"
	"github.com/graftcm/graft/internal/graphviz"
)

func graphCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:  "graph",
		Usage: "draw the local agent's running graph as Graphviz DOT, SVG or PNG",
		Description: "graph fetches the graph the agent runs (GET /v1/graph) and draws it. Each resource is a\n" +
			"box labelled kind[name] and filled by its state: green ok, yellow dirty, blue running,\n" +
			"grey waiting, red failed; resources grouped into one vertex (autogroup) are listed in\n" +
			"its box. A plain edge is a black arrow, a notify edge a dashed orange one labelled\n" +
			"\"notify\", a send/recv edge a bold blue one labelled \"send -> recv\" for each value it\n" +
			"carries. A legend shows the colours.\n\n" +
			"With no flag, or --dot, it prints the DOT text on stdout (render it with e.g.\n" +
			"`dot -Tsvg`). --svg FILE and --png FILE run Graphviz's dot program to write the\n" +
			"picture, and need it installed; with --dot as well, the DOT text is printed too.",
		Flags: append(clientFlags(),
			&cli.BoolFlag{Name: "dot", Usage: "print the graph as Graphviz DOT on stdout (the default without --svg and --png)"},
			&cli.StringFlag{Name: "svg", Usage: "write the graph as SVG to `FILE` (runs Graphviz's dot)"},
			&cli.StringFlag{Name: "png", Usage: "write the graph as PNG to `FILE` (runs Graphviz's dot)"},
		),
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return usageError("graph: unexpected argument %q", c.Args().First())
			}
			pics, err := pictureFlags(c)
			if err != nil {
				return err
			}
			var g api.Graph
			if err := withClient(c, func(ctx context.Context, client *api.Client) error {
				g, err = client.Graph(ctx)
				return err
			}); err != nil {
				return err
			}
			src := graphviz.DOT(g)
			if c.Bool("dot") || len(pics) == 0 {
				if _, err := e.stdout.Write(src); err != nil {
					return err
				}
			}
			for _, p := range pics {
				if err := graphviz.Render(c.Context, src, p.format, p.path); err != nil {
					return fmt.Errorf("--%s: %w", p.format, err)
				}
			}
			return nil
		},
	}
}

// picture is a file --svg or --png asks for.
type picture struct{ format, path string }

// pictureFlags checks --svg and --png, and that dot is installed if one
// is given, before the agent is asked anything.
func pictureFlags(c *cli.Context) ([]picture, error) {
	var pics []picture
	for _, format := range []string{"svg", "png"} {
		if !c.IsSet(format) {
			continue
		}
		path := c.String(format)
		if path == "" {
			return nil, usageError("--%s is empty: give the FILE to write", format)
		}
		if _, err := graphviz.LookDot(); err != nil {
			return nil, fmt.Errorf("--%s %s: %w", format, path, err)
		}
		pics = append(pics, picture{format, path})
	}
	return pics, nil
}

// graph is the API's Config.Graph.
func (r *engineRef) graph() api.Graph {
	if e := r.p.Load(); e != nil {
		return toAPIGraph(e.GraphStatus())
	}
	return api.Graph{}
}

// toAPIGraph converts the engine's graph status to the API's form.
func toAPIGraph(gs engine.GraphStatus) api.Graph {
	apiID := func(id engine.ID) api.ResourceID { return api.ResourceID{Kind: id.Kind, Name: id.Name} }
	out := api.Graph{Graph: gs.Graph, Converged: gs.Converged,
		Vertices: make([]api.GraphVertex, len(gs.Resources)), Edges: make([]api.GraphEdge, len(gs.Edges))}
	for i, r := range gs.Resources {
		v := api.GraphVertex{Kind: r.ID.Kind, Name: r.ID.Name, State: string(r.State), Waiting: r.Waiting}
		for _, m := range gs.Members[r.ID] {
			v.Members = append(v.Members, apiID(m))
		}
		out.Vertices[i] = v
	}
	for i, e := range gs.Edges {
		ge := api.GraphEdge{From: apiID(e.From), To: apiID(e.To), Notify: e.Notify}
		for _, k := range e.Keys {
			ge.Keys = append(ge.Keys, api.GraphKey{Send: k.Send, Recv: k.Recv})
		}
		out.Edges[i] = ge
	}
	return out
}
