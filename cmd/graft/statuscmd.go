package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/graftcm/graft/api"
)

func statusCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:  "status",
		Usage: "show the local agent's node and cluster",
		Description: "status prints this host's node as the running agent sees it: its gossip address (what\n" +
			"other nodes --join), the cluster's ID, the cluster key's fingerprint (never the key),\n" +
			"the raft state, the leader, the term, the raft log's last, commit and applied indexes,\n" +
			"the revision of the keys, and the cluster's raft servers. With --json it prints the\n" +
			"API's answer.",
		Flags: append(clientFlags(), jsonFlag()),
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return usageError("status: unexpected argument %q", c.Args().First())
			}
			return withClient(c, func(ctx context.Context, client *api.Client) error {
				st, err := client.Status(ctx)
				if err != nil {
					return err
				}
				if c.Bool("json") {
					b, err := json.MarshalIndent(st, "", "  ")
					if err != nil {
						return err
					}
					_, err = fmt.Fprintf(e.stdout, "%s\n", b)
					return err
				}
				return printStatus(e.stdout, st, time.Now())
			})
		},
	}
}

// printStatus prints the status as aligned `name: value` lines.
func printStatus(w io.Writer, st api.Status, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 0, 1, ' ', 0)
	line := func(name, format string, args ...any) {
		fmt.Fprintf(tw, "%s:\t"+format+"\n", append([]any{name}, args...)...)
	}
	line("node", "%s (%s)", st.ID, st.Address)
	if st.GossipAddr != "" {
		line("gossip", "%s", st.GossipAddr)
		id := st.ClusterID
		if id == "" {
			id = "not known yet"
		}
		line("cluster id", "%s", id)
	}
	if st.KeyFingerprint != "" {
		line("key", "fingerprint %s", st.KeyFingerprint)
	}
	line("state", "%s", st.State)
	switch {
	case st.Leader == "":
		line("leader", "none")
	case st.Leader == st.ID:
		line("leader", "%s (this node)", st.Leader)
	default:
		line("leader", "%s (%s)", st.Leader, st.LeaderAddr)
	}
	if !st.LastContact.IsZero() {
		line("last contact", "%v ago", now.Sub(st.LastContact).Round(time.Millisecond))
	}
	line("term", "%d", st.Term)
	line("last index", "%d", st.LastIndex)
	line("commit index", "%d", st.CommitIndex)
	line("applied index", "%d", st.AppliedIndex)
	line("revision", "%d", st.Revision)
	servers := make([]string, len(st.Servers))
	for i, s := range st.Servers {
		servers[i] = fmt.Sprintf("%s %s %s", s.ID, s.Address, s.Suffrage)
	}
	line("servers", "%s", strings.Join(servers, "\n\t"))
	line("version", "%s", st.Version)
	return tw.Flush()
}
