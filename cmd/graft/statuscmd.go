package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/graftcm/graft/api"
)

func statusCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:  "status",
		Usage: "show the local agent's node, cluster and resources",
		Description: "status prints this host's node as the running agent sees it: its gossip address (what\n" +
			"other nodes --join), the cluster's ID, the cluster key's fingerprint (never the key),\n" +
			"the raft state, the leader, the term, the raft log's last, commit and applied indexes,\n" +
			"the revision of the keys, and the cluster's raft servers; then a summary of the\n" +
			"cluster's hosts (by gossip state, voters, non-voters, converged) and a table of them:\n" +
			"host, gossip state (alive, suspect, dead or left), raft role (leader, voter, nonvoter\n" +
			"or none), when it last answered the leader (known on the leader; on a follower, for\n" +
			"the leader only) and whether it is converged (as it last published); then a summary\n" +
			"of this host's resources by state and a table of them: kind, name, state (ok, dirty,\n" +
			"running, waiting or failed), when the last check began, how long it took and the last\n" +
			"error, shortened. With --json it prints the API's answer, the hosts, the cluster's\n" +
			"summary under \"cluster\" and the resources (GET /v1/resources) under \"resources\".\n\n" +
			"With --watch it shows the status again every --interval until Ctrl-C: on a terminal\n" +
			"it redraws the screen in place; otherwise it prints each status after a line\n" +
			"\"--- graft status at TIME ---\", and with --json one JSON object a line.",
		Flags: append(clientFlags(), jsonFlag(),
			&cli.BoolFlag{Name: "watch", Aliases: []string{"w"}, Usage: "show the status again every --interval until Ctrl-C"},
			&cli.DurationFlag{Name: "interval", Value: defaultWatchInterval,
				Usage: "with --watch, how often to refresh (at least " + minWatchInterval.String() + ")"}),
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return usageError("status: unexpected argument %q", c.Args().First())
			}
			if c.Bool("watch") {
				interval := c.Duration("interval")
				if interval < minWatchInterval {
					return usageError("status: --interval %v: want at least %v", interval, minWatchInterval)
				}
				return watchStatus(c, e, interval)
			}
			if c.IsSet("interval") {
				return usageError("status: --interval needs --watch")
			}
			return withClient(c, func(ctx context.Context, client *api.Client) error {
				rep, err := gatherStatus(ctx, client)
				if err != nil {
					return err
				}
				if c.Bool("json") {
					b, err := json.MarshalIndent(rep, "", "  ")
					if err != nil {
						return err
					}
					_, err = fmt.Fprintf(e.stdout, "%s\n", b)
					return err
				}
				return printReport(e.stdout, rep, time.Now())
			})
		},
	}
}

// statusReport is everything `graft status` shows, and its JSON form:
// the API's status at top level, then the hosts, the cluster's summary
// and the resources. A part that could not be read is absent, with an
// error saying why.
type statusReport struct {
	api.Status
	Hosts          []hostState    `json:"hosts"`
	HostsError     string         `json:"hosts_error,omitempty"`
	Cluster        clusterSummary `json:"cluster"`
	Resources      *api.Resources `json:"resources,omitempty"`
	ResourcesError string         `json:"resources_error,omitempty"`
}

// gatherStatus asks the agent for everything `graft status` shows. Only
// a failure to get the agent's own status is an error.
func gatherStatus(ctx context.Context, client *api.Client) (statusReport, error) {
	st, err := client.Status(ctx)
	if err != nil {
		return statusReport{}, err
	}
	rep := statusReport{Status: st}
	// The hosts' states are a read that waits for the cluster's leader
	// until this node has caught up; the rest of the status must show
	// without one.
	hctx, cancel := context.WithTimeout(ctx, hostsTimeout)
	hosts, err := hostStates(hctx, client, st)
	cancel()
	if err != nil {
		rep.HostsError = err.Error()
	} else {
		rep.Hosts = hosts
	}
	rep.Cluster = summarize(st, rep.Hosts)
	rs, err := hostResources(ctx, client)
	if err != nil {
		rep.ResourcesError = err.Error()
	}
	rep.Resources = rs
	return rep, nil
}

// printReport prints the status as text: the node, the hosts, the
// resources, a blank line between them.
func printReport(w io.Writer, rep statusReport, now time.Time) error {
	if err := printStatus(w, rep.Status, now); err != nil {
		return err
	}
	fmt.Fprintln(w)
	if rep.HostsError != "" {
		fmt.Fprintf(w, "hosts: not known: %s\n", rep.HostsError)
	} else if err := printHosts(w, rep.Cluster, rep.Hosts, now); err != nil {
		return err
	}
	if rep.ResourcesError != "" || rep.Resources != nil {
		fmt.Fprintln(w)
	}
	switch {
	case rep.ResourcesError != "":
		_, err := fmt.Fprintf(w, "resources: not known: %s\n", rep.ResourcesError)
		return err
	case rep.Resources != nil:
		return printResources(w, *rep.Resources, now)
	}
	return nil
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

// hostResources returns the status of the agent's resources: nil without
// an error if the agent serves none.
func hostResources(ctx context.Context, client *api.Client) (*api.Resources, error) {
	rs, err := client.Resources(ctx)
	switch {
	case api.StatusCode(err) == http.StatusNotImplemented:
		return nil, nil
	case err != nil:
		return nil, err
	}
	return &rs, nil
}
