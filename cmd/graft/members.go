package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/graftcm/graft/api"
)

func membersCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:  "members",
		Usage: "list the cluster's members as the local agent sees them",
		Description: "members prints a line per node the agent knows of: its name, gossip address, cluster\n" +
			"(raft) address, gossip state (alive, suspect, dead or left), raft role (leader, voter,\n" +
			"nonvoter, or none: not in raft yet, or removed) and when it last answered the leader\n" +
			"(known on the leader; on a follower, for the leader only). With --json it prints the\n" +
			"API's objects.",
		Flags: append(clientFlags(), jsonFlag()),
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return usageError("members: unexpected argument %q", c.Args().First())
			}
			return withClient(c, func(ctx context.Context, client *api.Client) error {
				ms, err := client.Members(ctx)
				if err != nil {
					return err
				}
				if c.Bool("json") {
					b, err := json.MarshalIndent(ms, "", "  ")
					if err != nil {
						return err
					}
					_, err = fmt.Fprintf(e.stdout, "%s\n", b)
					return err
				}
				return printMembers(e.stdout, ms, time.Now())
			})
		},
	}
}

// printMembers prints the members as an aligned table.
func printMembers(w io.Writer, ms []api.MemberInfo, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tGOSSIP\tRAFT\tSTATE\tROLE\tLAST CONTACT")
	for _, m := range ms {
		contact := "-"
		if !m.LastContact.IsZero() {
			contact = fmt.Sprintf("%.1fs ago", max(now.Sub(m.LastContact), 0).Seconds())
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", m.Name, orDash(m.GossipAddr), orDash(m.RaftAddr), m.Gossip, m.Role, contact)
	}
	return tw.Flush()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
