package server

import (
	"github.com/graftcm/graft/api"
	"github.com/graftcm/graft/cluster"
	"github.com/graftcm/graft/cluster/raftnode"
	"github.com/graftcm/graft/fsm"
	"github.com/graftcm/graft/world"
)

func fromFSM(kv fsm.KV) api.KV {
	return api.KV{Key: kv.Key, Value: kv.Value, CreateRev: kv.CreateRev, ModRev: kv.ModRev, Version: kv.Version, Owner: kv.Owner}
}

func fromFSMList(kvs []fsm.KV) []api.KV {
	out := make([]api.KV, len(kvs))
	for i, kv := range kvs {
		out[i] = fromFSM(kv)
	}
	return out
}

func fromWorld(ev world.WatchEvent) api.WatchEvent {
	out := api.WatchEvent{Rev: ev.Rev, Resync: ev.Resync}
	if ev.Resync {
		out.State = fromFSMList(ev.State)
	}
	for _, e := range ev.Events {
		t := api.EventPut
		if e.Type == fsm.EventDelete {
			t = api.EventDelete
		}
		out.Events = append(out.Events, api.Event{Type: t, KV: fromFSM(e.KV)})
	}
	return out
}

// fromStatus is the API's form of the raft node's status.
func fromStatus(st raftnode.Status) api.RaftStatus {
	out := api.RaftStatus{ID: st.ID, Address: st.Address, State: st.State, Leader: st.Leader, LeaderAddr: st.LeaderAddr,
		Term: st.Term, LastIndex: st.LastIndex, CommitIndex: st.CommitIndex, AppliedIndex: st.AppliedIndex,
		Revision: st.Revision, LastContact: st.LastContact}
	for _, s := range st.Servers {
		out.Servers = append(out.Servers, api.RaftServer{ID: s.ID, Address: s.Address, Suffrage: s.Suffrage})
	}
	return out
}

// fromMembers is the API's form of the cluster's members.
func fromMembers(ms []cluster.MemberInfo) []api.MemberInfo {
	out := make([]api.MemberInfo, len(ms))
	for i, m := range ms {
		out[i] = api.MemberInfo{Name: m.Name, GossipAddr: m.GossipAddr, RaftAddr: m.RaftAddr, Gossip: m.Gossip,
			Role: m.Role, LastContact: m.LastContact, Version: m.Version}
	}
	return out
}
