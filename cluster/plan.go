package cluster

import (
	"log/slog"
	"maps"
	"slices"
	"time"

	"github.com/hashicorp/raft"
)

// The reconciler is a planner and an executor. plan decides, from a view
// of the cluster taken at the start of a pass, what the leader does, in
// order, without touching raft, the ring or the clock; execute (see
// reconcile.go) carries the actions out while this node still leads.

// leaderState is what the reconciler remembers while this node leads, from
// one pass to the next. It is touched only by the reconcile goroutine.
type leaderState struct {
	term         uint64
	since        time.Time            // when this node began leading in term
	failedSince  map[string]time.Time // nodes that failed, and since when
	heardAt      map[string]time.Time // servers that answered the progress call or raft, and when last
	released     map[string]bool      // failed nodes whose slots were released
	healthySince map[string]time.Time // non-voters caught up, and since when
	exportsGone  map[string]time.Time // nodes gone for good that export, and since when
}

// in returns the state to plan with in term at now: a copy of st, or a
// fresh one begun at now when this node leads in a term it had not led in
// yet.
func (st leaderState) in(term uint64, now time.Time) leaderState {
	if st.term != term || st.failedSince == nil {
		return leaderState{term: term, since: now, failedSince: map[string]time.Time{}, heardAt: map[string]time.Time{},
			released: map[string]bool{}, healthySince: map[string]time.Time{},
			exportsGone: map[string]time.Time{}}
	}
	st.failedSince, st.released = maps.Clone(st.failedSince), maps.Clone(st.released)
	st.heardAt = maps.Clone(st.heardAt)
	st.healthySince, st.exportsGone = maps.Clone(st.healthySince), maps.Clone(st.exportsGone)
	return st
}

// planConfig is the part of ServerConfig the planner reads.
type planConfig struct {
	voters          int           // the largest number of voters
	deadServerGrace time.Duration // down this long: removed from raft
	releaseGrace    time.Duration // failed this long: slots and ephemeral keys released
	stabilization   time.Duration // caught up this long: a non-voter may be promoted
	catchupLag      uint64        // entries behind the leader still caught up
	exportGrace     time.Duration // gone for good this long: exports withdrawn
}

func (c ServerConfig) planConfig() planConfig {
	return planConfig{voters: c.Voters, deadServerGrace: c.DeadServerGrace, releaseGrace: c.ReleaseGrace,
		stabilization: c.Stabilization, catchupLag: c.CatchupLag, exportGrace: c.ExportGrace}
}

// view is everything a reconcile pass decides on, taken once at its start.
type view struct {
	leader    bool   // this node leads in term
	term      uint64 // the raft term the pass began in
	now       time.Time
	self      string
	clusterID string        // this cluster's ID, empty until known
	servers   []raft.Server // the raft configuration
	lastIndex uint64        // the leader's last log index
	// progress holds the last log index of every other raft server that
	// answered the leader's progress call just now; the others are absent.
	progress map[string]uint64
	// answered holds, by server, when the newest raft request of term it
	// answered was sent (see raftnode.Node.Answered): the leader heard
	// from it then, though the probe may be older.
	answered  map[string]time.Time
	alive     map[string]ringMember // the ring's members of this cluster
	gone      map[string]goneNode   // nodes memberlist reported dead or left
	departed  map[string]time.Time  // nodes that asked to leave, until they rejoin
	exporting map[string]bool       // nodes that export resources
	lead      leaderState           // what earlier passes in this term remembered
	cfg       planConfig
	// failed holds the changes of this pass that failed (see execute):
	// plan makes them no more, and counts them as not made.
	failed map[actionKey]bool
}

// actionKind is what an action does.
type actionKind int

const (
	actAddNonvoter actionKind = iota // a server alive in the ring joins raft as a non-voter
	actReaddress                     // a server's cluster address changed: raft follows it
	actPromote                       // a caught-up non-voter becomes a voter
	actRelease                       // a gone node's semaphore slots and ephemeral keys are released
	actRemove                        // a failed or departed server leaves the raft configuration
	actWithdraw                      // a node gone for good has its exports withdrawn
	actNote                          // nothing is done; the reason is only logged
)

var actionNames = [...]string{"add-nonvoter", "readdress", "promote", "release", "remove", "withdraw", "note"}

func (k actionKind) String() string { return actionNames[k] }

// action is one step of a pass. reason and attrs say why it was chosen:
// the executor logs them (at warn for a warning note), before a
// configuration change, after a release or a withdrawal that succeeded.
type action struct {
	kind   actionKind
	server string
	addr   string // the server's cluster address (add, readdress, promote)
	voter  bool   // readdress: it stays a voter; remove: it was a voter
	left   bool   // release, remove: it left gracefully (or asked to)
	warn   bool   // note: a warning
	reason string
	attrs  []any
}

// actionKey names an action within a pass.
type actionKey struct {
	kind   actionKind
	server string
}

func (a action) key() actionKey { return actionKey{a.kind, a.server} }

// counted reports whether later decisions of the pass count on the action
// succeeding: a promotion adds a voter that answers, a removal takes one
// away.
func (a action) counted() bool { return a.kind == actPromote || a.kind == actRemove }

// planned is a pass's actions, in order, and the state to remember after
// it. What an action changes in that state once it succeeds (see
// recordDone) is the executor's to record.
type planned struct {
	actions []action
	lead    leaderState
}

// plan decides a reconcile pass. On the leader:
//
//   - a server alive in the ring but not in raft joins as a non-voter (and
//     a server whose cluster address changed is updated, this one too),
//     unless it is of another cluster, or started on raft state of its own
//     and does not say it is of this one, or is leaving;
//   - a non-voter that has stayed caught up for Stabilization is promoted
//     while fewer voters are up than wanted: the largest odd number up to
//     Voters that the servers up allow;
//   - a server is up if the ring shows it or it answers the leader's
//     progress call. One that is down has failed once memberlist reported
//     it dead (or left), or once it has been down for DeadServerGrace
//     while this node led (a new leader whose ring has not converged acts
//     on nobody meanwhile). A failed node's semaphore slots and ephemeral
//     keys are released after ReleaseGrace (at once if it left); it is
//     removed from raft after DeadServerGrace (at once if it left), but
//     never when the voters that answered the progress call would not be
//     a quorum of the new configuration;
//   - a node gone for good that exports resources has them withdrawn after
//     ExportGrace (see planExports).
//
// A node that does not lead plans nothing and remembers nothing.
func plan(v view) planned {
	if !v.leader {
		return planned{}
	}
	p := &planner{v: v, lead: v.lead.in(v.term, v.now), inRaft: map[string]raft.Server{}}
	for _, srv := range v.servers {
		p.inRaft[string(srv.ID)] = srv
	}
	p.health = healthOf(v.self, v.servers, v.alive, v.progress)
	p.joins()
	p.promotions()
	p.failures()
	p.goneReleases()
	p.exports()
	return planned{actions: p.actions, lead: p.lead}
}

// planner holds a pass being planned.
type planner struct {
	v       view
	lead    leaderState
	inRaft  map[string]raft.Server
	health  map[string]bool
	actions []action
	// voters counts the voters as the pass changes them; answering, those
	// of them that answered just now: only they make a removal safe (the
	// ring takes seconds to notice a death).
	voters, answering int
}

func (p *planner) add(a action) {
	if a.counted() && p.v.failed[a.key()] {
		return
	}
	p.actions = append(p.actions, a)
}

// made reports whether a counted action was planned (it did not fail
// earlier in the pass).
func (p *planner) made(kind actionKind, server string) bool {
	return !p.v.failed[actionKey{kind, server}]
}

// joins adds the ring's servers that raft lacks, and follows address
// changes.
func (p *planner) joins() {
	v := p.v
	for _, name := range sortedKeys(v.alive) {
		m := v.alive[name].meta
		srv, ok := p.inRaft[name]
		switch {
		case !ok && (!v.departed[name].IsZero() || m.Leaving):
			// Leaving: it asked to be removed and has not left the ring yet.
		case !ok && m.ClusterID != "" && m.ClusterID != v.clusterID:
			// Of another cluster (the ring let it in before either knew).
		case !ok && m.State && (m.ClusterID == "" || v.clusterID == ""):
			// Started on raft state of a cluster it (or this node) cannot
			// name: it may be another cluster's, whose log raft would
			// take for this one's.
		case !ok:
			p.add(action{kind: actAddNonvoter, server: name, addr: m.RaftAddr,
				reason: "adding a server as a non-voter", attrs: []any{"server", name, "address", m.RaftAddr}})
		case string(srv.Address) != m.RaftAddr:
			// This node too: restarted on another address, it would
			// keep its old one in raft (and in graft status) for good.
			p.add(action{kind: actReaddress, server: name, addr: m.RaftAddr, voter: srv.Suffrage == raft.Voter,
				reason: "a server's cluster address changed", attrs: []any{"server", name, "from", srv.Address, "to", m.RaftAddr}})
		}
	}
}

// promotions promotes caught-up non-voters while voters are short.
func (p *planner) promotions() {
	v := p.v
	upServers, upVoters := 0, 0
	for _, srv := range v.servers {
		id := string(srv.ID)
		if srv.Suffrage == raft.Voter {
			p.voters++
			if _, answered := v.progress[id]; id == v.self || answered {
				p.answering++
			}
		}
		if p.health[id] {
			upServers++
			if srv.Suffrage == raft.Voter {
				upVoters++
			}
		}
	}
	want := min(v.cfg.voters, upServers)
	if want%2 == 0 {
		want--
	}
	// Only non-voters keep a clock: one a voter or a removed server kept
	// would promote the server at once were it added again as a spare.
	for id := range p.lead.healthySince {
		if !slices.ContainsFunc(v.servers, func(s raft.Server) bool { return string(s.ID) == id && s.Suffrage != raft.Voter }) {
			delete(p.lead.healthySince, id)
		}
	}
	for _, srv := range v.servers {
		id := string(srv.ID)
		if srv.Suffrage == raft.Voter || id == v.self {
			continue
		}
		index, answered := v.progress[id]
		if !p.health[id] || !answered || index+v.cfg.catchupLag < v.lastIndex {
			delete(p.lead.healthySince, id)
			continue
		}
		if _, ok := p.lead.healthySince[id]; !ok {
			p.lead.healthySince[id] = v.now
		}
		if upVoters >= want || v.now.Sub(p.lead.healthySince[id]) < v.cfg.stabilization {
			continue
		}
		p.add(action{kind: actPromote, server: id, addr: string(srv.Address),
			reason: "promoting a caught-up non-voter", attrs: []any{"server", id, "voters_up", upVoters, "want", want}})
		if p.made(actPromote, id) {
			upVoters++
			p.voters++
			p.answering++
		}
	}
}

// failures releases what failed servers held, and removes them when safe.
func (p *planner) failures() {
	v := p.v
	for _, srv := range v.servers {
		id := string(srv.ID)
		if _, answered := v.progress[id]; answered {
			p.lead.heardAt[id] = v.now
		}
		if at, ok := v.answered[id]; ok && at.After(p.lead.heardAt[id]) {
			p.lead.heardAt[id] = at
		}
		if p.health[id] {
			delete(p.lead.failedSince, id)
			delete(p.lead.released, id)
			continue
		}
		g, reported := v.gone[id]
		left := reported && g.left || !v.departed[id].IsZero()
		if _, ok := p.lead.failedSince[id]; !ok {
			switch {
			case reported:
				// The report says when the ring declared the server
				// dead, not when it went silent: a server that answered
				// since (the ring, not refuted yet, will not report it
				// again), or one that a node cut off for a while
				// declared dead and relays the news of as it heals
				// (the server, cut off meanwhile, cannot refute it),
				// may have heard from a leader just before. So it
				// counts as failed no sooner than ReleaseGrace,
				// standing for the ring's time to notice, after this
				// leader last heard from it, or, if it has not, after
				// this leader began leading (the one before may have
				// heard from it until then). Its slots go at least
				// twice ReleaseGrace after that, past its host's lease
				// (DefaultLeaseTimeout is ReleaseGrace), even when the
				// host led and counts from its step-down. Being alive
				// in the ring is no such word: the ring shows a silent
				// server alive until it notices.
				p.lead.failedSince[id] = later(g.at, p.lastHeard(id).Add(v.cfg.releaseGrace))
			case v.now.Sub(p.lastHeard(id)) >= v.cfg.deadServerGrace:
				// Down, never reported dead, for a full grace since this
				// leader last heard from it, or began leading (a grace
				// of at least twice ReleaseGrace: see Validate).
				p.lead.failedSince[id] = v.now.Add(-v.cfg.deadServerGrace)
			default:
				continue
			}
		}
		failedFor := v.now.Sub(p.lead.failedSince[id])
		if !p.lead.released[id] && (left || failedFor >= v.cfg.releaseGrace) {
			p.add(releaseAction(id, left))
		}
		if !left && failedFor < v.cfg.deadServerGrace {
			continue
		}
		voter := srv.Suffrage == raft.Voter
		if newVoters := p.voters - 1; voter && p.answering < newVoters/2+1 {
			p.add(action{kind: actNote, server: id, warn: true,
				reason: "not removing a failed voter: the voters up would not be a quorum",
				attrs:  []any{"server", id, "voters", p.voters, "answering", p.answering}})
			continue
		}
		p.add(action{kind: actRemove, server: id, voter: voter, left: left, reason: "removing a server that is gone",
			attrs: []any{"server", id, "graceful", left, "failed_for", failedFor.Round(time.Millisecond)}})
		if voter && p.made(actRemove, id) {
			p.voters--
		}
	}
}

// lastHeard returns when this leader last heard from server id: the
// probe's answer or raft's, or, if it has not, when it began leading (the
// one before may have heard from it until then).
func (p *planner) lastHeard(id string) time.Time {
	if heard, ok := p.lead.heardAt[id]; ok && heard.After(p.lead.since) {
		return heard
	}
	return p.lead.since
}

// goneReleases releases, once, the slots and ephemeral keys of nodes
// reported gone that raft no longer (or never) had.
func (p *planner) goneReleases() {
	v := p.v
	for _, name := range sortedKeys(v.gone) {
		g := v.gone[name]
		if _, in := p.inRaft[name]; in || p.lead.released[name] {
			continue
		}
		if _, up := v.alive[name]; up {
			continue
		}
		if g.left || v.now.Sub(g.at) >= v.cfg.releaseGrace {
			p.add(releaseAction(name, g.left))
		}
	}
}

// later returns the later of a and b.
func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func releaseAction(name string, left bool) action {
	if left {
		return action{kind: actRelease, server: name, left: true,
			reason: "released the semaphore slots and ephemeral keys of a node that left", attrs: []any{"server", name}}
	}
	return action{kind: actRelease, server: name,
		reason: "released a failed node's semaphore slots and ephemeral keys", attrs: []any{"server", name}}
}

// exports withdraws the exports of nodes gone for good: nodes that export
// resources but are neither in the raft configuration nor alive in the
// ring (removed after DeadServerGrace, or left), and have been so for
// ExportGrace while this node led. A node that crashes or restarts is
// still in raft; one that comes back is alive in the ring: either keeps
// its exports and restarts the clock. So does a new leader, whose clock
// starts when it begins to lead.
func (p *planner) exports() {
	v := p.v
	for name := range p.lead.exportsGone {
		if !v.exporting[name] {
			delete(p.lead.exportsGone, name)
		}
	}
	for _, name := range sortedKeys(v.exporting) {
		_, in := p.inRaft[name]
		_, up := v.alive[name]
		if in || up {
			delete(p.lead.exportsGone, name)
			continue
		}
		since, ok := p.lead.exportsGone[name]
		if !ok {
			p.lead.exportsGone[name] = v.now
			p.add(action{kind: actNote, server: name,
				reason: "a node that exports resources is gone; withdrawing them after the export grace",
				attrs:  []any{"server", name, "export_grace", v.cfg.exportGrace}})
			continue
		}
		if v.now.Sub(since) < v.cfg.exportGrace {
			continue
		}
		goneFor := v.now.Sub(since).Round(time.Millisecond)
		p.add(action{kind: actWithdraw, server: name, reason: "withdrew the exports of a node gone for good",
			attrs: []any{"server", name, "gone_for", goneFor}})
	}
}

// recordDone records in st what a that succeeded changed.
func recordDone(st leaderState, a action) {
	switch a.kind {
	case actRelease:
		st.released[a.server] = true
	case actRemove:
		delete(st.failedSince, a.server)
	case actWithdraw:
		delete(st.exportsGone, a.server)
	}
}

// level is the level the executor logs a's reason at.
func (a action) level() slog.Level {
	if a.warn {
		return slog.LevelWarn
	}
	return slog.LevelInfo
}

// healthOf says which raft servers are up: this one, those the ring shows
// alive, and those that answered the leader's progress call.
func healthOf(self string, servers []raft.Server, alive map[string]ringMember, progress map[string]uint64) map[string]bool {
	health := map[string]bool{}
	for _, srv := range servers {
		id := string(srv.ID)
		_, inRing := alive[id]
		_, answered := progress[id]
		health[id] = id == self || inRing || answered
	}
	return health
}
