package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/graftcm/graft/api"
	"github.com/graftcm/graft/fsm"
)

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
	// Role is the host's raft role: leader, voter, nonvoter, or none (a
	// member outside raft: not in it yet, or removed).
	Role string `json:"role"`
	// LastContact is when the host last answered the leader, as the
	// leader knows it; on a follower only the leader's is known: when
	// this node last heard from it. Zero when unknown.
	LastContact time.Time `json:"last_contact,omitzero"`
}

// clusterSummary is the cluster at a glance, from this node's view: the
// raft servers by suffrage and the hosts by gossip and converged state,
// each a sorted list of names (in JSON empty, never null, except the
// hosts' lists when the hosts are not known: those are null).
type clusterSummary struct {
	Leader           string   `json:"leader"`
	Term             uint64   `json:"term"`
	Voters           []string `json:"voters"`
	NonVoters        []string `json:"nonvoters"`
	Alive            []string `json:"alive"`
	Suspect          []string `json:"suspect"`
	Dead             []string `json:"dead"`
	Left             []string `json:"left"`
	Converged        []string `json:"converged"`
	NotConverged     []string `json:"not_converged"`
	ConvergedUnknown []string `json:"converged_unknown"`
}

// summarize sums up the raft servers of st and, if hosts is not nil, the
// hosts.
func summarize(st api.Status, hosts []hostState) clusterSummary {
	s := clusterSummary{Leader: st.Leader, Term: st.Term, Voters: []string{}, NonVoters: []string{}}
	if hosts != nil {
		s.Alive, s.Suspect, s.Dead, s.Left = []string{}, []string{}, []string{}, []string{}
		s.Converged, s.NotConverged, s.ConvergedUnknown = []string{}, []string{}, []string{}
	}
	for _, srv := range st.Servers {
		if srv.Suffrage == "voter" {
			s.Voters = append(s.Voters, srv.ID)
		} else {
			s.NonVoters = append(s.NonVoters, srv.ID)
		}
	}
	for _, h := range hosts {
		switch h.Gossip {
		case "alive":
			s.Alive = append(s.Alive, h.Host)
		case "suspect":
			s.Suspect = append(s.Suspect, h.Host)
		case "dead":
			s.Dead = append(s.Dead, h.Host)
		case "left":
			s.Left = append(s.Left, h.Host)
		}
		switch h.Converged {
		case "true":
			s.Converged = append(s.Converged, h.Host)
		case "false":
			s.NotConverged = append(s.NotConverged, h.Host)
		default:
			s.ConvergedUnknown = append(s.ConvergedUnknown, h.Host)
		}
	}
	for _, l := range [][]string{s.Voters, s.NonVoters} {
		sort.Strings(l)
	}
	return s
}

// hostStates returns every member, every raft server and every host
// with a published converged state, sorted by name. An agent without
// membership has only the raft servers and the published states.
func hostStates(ctx context.Context, client *api.Client, st api.Status) ([]hostState, error) {
	prefix := fsm.HostPrefix + convergedNS + "/"
	kvs, _, err := client.List(ctx, prefix)
	if err != nil {
		return nil, err
	}
	byName := map[string]*hostState{}
	get := func(name string) *hostState {
		if byName[name] == nil {
			byName[name] = &hostState{Host: name, Role: "none"}
		}
		return byName[name]
	}
	for _, kv := range kvs {
		get(strings.TrimPrefix(kv.Key, prefix)).Converged = string(kv.Value)
	}
	for _, srv := range st.Servers {
		get(srv.ID).Role = srv.Suffrage
	}
	if st.Leader != "" {
		get(st.Leader).Role = "leader"
		if st.Leader != st.ID {
			get(st.Leader).LastContact = st.LastContact
		}
	}
	ms, err := client.Members(ctx)
	if err != nil && api.StatusCode(err) != http.StatusNotImplemented {
		return nil, err
	}
	for _, m := range ms {
		h := get(m.Name)
		h.Gossip = m.Gossip
		if m.Role != "none" || h.Role == "none" {
			h.Role = m.Role
		}
		if !m.LastContact.IsZero() {
			h.LastContact = m.LastContact
		}
	}
	out := make([]hostState, 0, len(byName))
	for _, h := range byName {
		out = append(out, *h)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Host < out[j].Host })
	return out, nil
}

// printHosts prints a `hosts:` summary line, then a table of the hosts:
// name, gossip state, raft role, last contact with the leader and
// converged state.
func printHosts(w io.Writer, sum clusterSummary, hosts []hostState, now time.Time) error {
	states := fmt.Sprintf("%d alive", len(sum.Alive))
	if n := len(sum.Suspect); n > 0 {
		states += fmt.Sprintf(", %d suspect", n)
	}
	states += fmt.Sprintf(", %d dead, %d left", len(sum.Dead), len(sum.Left))
	if n := len(hosts) - len(sum.Alive) - len(sum.Suspect) - len(sum.Dead) - len(sum.Left); n > 0 {
		states += fmt.Sprintf(", %d not members", n)
	}
	live := len(sum.Alive) + len(sum.Suspect)
	if live == 0 {
		live = len(hosts) // no membership: no gossip states
	}
	fmt.Fprintf(w, "hosts:         %d (%s), %s, %s, %d of %d live converged\n",
		len(hosts), states, plural(len(sum.Voters), "voter"), plural(len(sum.NonVoters), "non-voter"),
		liveConverged(sum, live == len(hosts)), live)
	if len(hosts) == 0 {
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "HOST\tGOSSIP\tROLE\tLAST CONTACT\tCONVERGED")
	for _, h := range hosts {
		contact := "-"
		if !h.LastContact.IsZero() {
			contact = fmt.Sprintf("%.1fs ago", max(now.Sub(h.LastContact), 0).Seconds())
		}
		conv := "unknown"
		switch h.Converged {
		case "true":
			conv = "yes"
		case "false":
			conv = "no"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", h.Host, orDash(h.Gossip), h.Role, contact, conv)
	}
	return tw.Flush()
}

// liveConverged counts the converged hosts that are alive or suspect, or
// all of them when all count as live.
func liveConverged(sum clusterSummary, all bool) int {
	if all {
		return len(sum.Converged)
	}
	live := map[string]bool{}
	for _, h := range append(append([]string{}, sum.Alive...), sum.Suspect...) {
		live[h] = true
	}
	n := 0
	for _, h := range sum.Converged {
		if live[h] {
			n++
		}
	}
	return n
}

// plural is n and the noun, with an s unless n is 1.
func plural(n int, noun string) string {
	if n == 1 {
		return fmt.Sprintf("1 %s", noun)
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
