package cluster

import (
	"sort"
	"time"

	"github.com/hashicorp/raft"
)

// MemberInfo describes one node as this node sees it.
type MemberInfo struct {
	Name string `json:"name"`
	// GossipAddr and RaftAddr are the node's gossip and cluster ports.
	GossipAddr string `json:"gossip_address"`
	RaftAddr   string `json:"raft_address,omitempty"`
	// Gossip is alive, suspect, dead or left.
	Gossip string `json:"gossip"`
	// Role is leader, voter, nonvoter, or none (not in raft yet, or removed).
	Role string `json:"role"`
	// LastContact is when the node last answered the leader (known on the
	// leader), or, for the leader seen from a follower, when it last
	// contacted this node. Zero when unknown.
	LastContact time.Time `json:"last_contact,omitzero"`
	Version     string    `json:"version,omitempty"`
}

// Members lists the nodes of the ring (alive, suspect, and those gone that
// are remembered) with their raft roles, sorted by name.
func (s *Server) Members() []MemberInfo {
	roles := map[string]string{}
	if servers, err := s.node.Configuration(); err == nil {
		for _, srv := range servers {
			role := "voter"
			if srv.Suffrage != raft.Voter {
				role = "nonvoter"
			}
			roles[string(srv.ID)] = role
		}
	}
	leader, _ := s.node.Leader()
	var out []MemberInfo
	seen := map[string]bool{}
	for name, e := range s.ringView() {
		seen[name] = true
		out = append(out, MemberInfo{Name: name, GossipAddr: e.addr, RaftAddr: e.meta.RaftAddr,
			Gossip: "alive", Version: e.meta.Version})
	}
	s.goneMu.Lock()
	for name, g := range s.gone {
		if !seen[name] {
			state := "dead"
			if g.left {
				state = "left"
			}
			out = append(out, MemberInfo{Name: name, RaftAddr: g.meta.RaftAddr, Gossip: state, Version: g.meta.Version})
		}
	}
	s.goneMu.Unlock()
	contacts := s.contacts()
	for i := range out {
		m := &out[i]
		m.Role = roles[m.Name]
		if m.Role == "" {
			m.Role = "none"
		}
		if m.Name == leader {
			m.Role = "leader"
		}
		m.LastContact = contacts[m.Name]
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// contacts returns the last-contact times this node knows.
func (s *Server) contacts() map[string]time.Time {
	out := map[string]time.Time{}
	if s.node.IsLeader() {
		s.contactMu.Lock()
		for k, v := range s.contact {
			out[k] = v
		}
		s.contactMu.Unlock()
		return out
	}
	if leader, _ := s.node.Leader(); leader != "" {
		out[leader] = s.node.LeaderContact()
	}
	return out
}
