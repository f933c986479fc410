package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/graftcm/graft/api"
	"github.com/graftcm/graft/fsm"
)

func statusCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:  "status",
		Usage: "show the local agent's node, cluster and resources",
		Description: "status prints this host's node as the running agent sees it: its gossip address (what\n" +
			"other nodes --join), the cluster's ID, the cluster key's fingerprint (never the key),\n" +
			"the raft state, the leader, the term, the raft log's last, commit and applied indexes,\n" +
			"the revision of the keys, and the cluster's raft servers; then every host of the\n" +
			"cluster with its gossip state and whether it is converged (as it last published); then\n" +
			"a summary of this host's resources by state and a table of them: kind, name, state\n" +
			"(ok, dirty, running, waiting or failed), when the last check began, how long it took\n" +
			"and the last error, shortened. With --json it prints the API's answer, the hosts and\n" +
			"the resources (GET /v1/resources) under \"resources\".",
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
				// The hosts' states are a read that waits for the
				// cluster's leader until this node has caught up; the
				// rest of the status must show without one.
				hctx, cancel := context.WithTimeout(ctx, hostsTimeout)
				hosts, herr := hostStates(hctx, client)
				cancel()
				rs, rerr := hostResources(ctx, client)
				if c.Bool("json") {
					out := struct {
						api.Status
						Hosts          []hostState    `json:"hosts"`
						HostsError     string         `json:"hosts_error,omitempty"`
						Resources      *api.Resources `json:"resources,omitempty"`
						ResourcesError string         `json:"resources_error,omitempty"`
					}{Status: st, Hosts: hosts, Resources: rs}
					if herr != nil {
						out.HostsError = herr.Error()
					}
					if rerr != nil {
						out.ResourcesError = rerr.Error()
					}
					b, err := json.MarshalIndent(out, "", "  ")
					if err != nil {
						return err
					}
					_, err = fmt.Fprintf(e.stdout, "%s\n", b)
					return err
				}
				if err := printStatus(e.stdout, st, time.Now()); err != nil {
					return err
				}
				if herr != nil {
					fmt.Fprintf(e.stdout, "hosts: not known: %v\n", herr)
				} else if err := printHosts(e.stdout, hosts); err != nil {
					return err
				}
				switch {
				case rerr != nil:
					_, err := fmt.Fprintf(e.stdout, "resources: not known: %v\n", rerr)
					return err
				case rs != nil:
					return printResources(e.stdout, *rs, time.Now())
				}
				return nil
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

// hostsTimeout bounds how long `graft status` waits for the hosts'
// converged states.
const hostsTimeout = 2 * time.Second

// hostState is a host of the cluster as `graft status` shows it.
type hostState struct {
	Host string `json:"host"`
	// Gossip is the member's gossip state (alive, suspect, dead, left),
	// empty if it is not a member this node knows.
	Gossip string `json:"gossip,omitempty"`
	// Converged is what the host last published: "true", "false", or
	// empty if it published nothing (or its value went with it).
	Converged string `json:"converged,omitempty"`
}

// hostStates returns every member and every host with a published
// converged state, sorted by name. An agent without membership has only
// the published states.
func hostStates(ctx context.Context, client *api.Client) ([]hostState, error) {
	prefix := fsm.HostPrefix + convergedNS + "/"
	kvs, _, err := client.List(ctx, prefix)
	if err != nil {
		return nil, err
	}
	byName := map[string]*hostState{}
	get := func(name string) *hostState {
		if byName[name] == nil {
			byName[name] = &hostState{Host: name}
		}
		return byName[name]
	}
	for _, kv := range kvs {
		get(strings.TrimPrefix(kv.Key, prefix)).Converged = string(kv.Value)
	}
	ms, err := client.Members(ctx)
	if err != nil && api.StatusCode(err) != http.StatusNotImplemented {
		return nil, err
	}
	for _, m := range ms {
		get(m.Name).Gossip = m.Gossip
	}
	out := make([]hostState, 0, len(byName))
	for _, h := range byName {
		out = append(out, *h)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Host < out[j].Host })
	return out, nil
}

// printHosts prints a `hosts:` block: a host a line, with its gossip
// state and converged state.
func printHosts(w io.Writer, hosts []hostState) error {
	tw := tabwriter.NewWriter(w, 0, 0, 1, ' ', 0)
	for i, h := range hosts {
		name := ""
		if i == 0 {
			name = "hosts:"
		}
		state := "converged"
		switch h.Converged {
		case "true":
		case "false":
			state = "not converged"
		default:
			state = "converged state unknown"
		}
		gossip := h.Gossip
		if gossip == "" {
			gossip = "not a member"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", name, h.Host, gossip, state)
	}
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
