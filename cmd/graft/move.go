package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"

	"github.com/graftcm/graft/api"
	apiserver "github.com/graftcm/graft/api/server"
	"github.com/graftcm/graft/cluster"
	"github.com/graftcm/graft/cluster/clusterkey"
	"github.com/graftcm/graft/discovery"
)

// A node that never had a peer holds a key and a cluster nobody else
// has, so it may give both up to join another cluster: it adopts the
// other cluster's key, and it sets its own one-node cluster aside (raft
// cannot merge two clusters' states; see aside.go). Either means a new
// cluster server, so the agent restarts its cluster side (server, World
// and local API); the engine runs on meanwhile. One restart runs at a
// time, and each is made only on the side it was asked for on: a restart
// made meanwhile drops it.

// move is a restart of the cluster side to join another cluster, asked
// for on the side of generation gen.
type move struct {
	gen   uint64
	seeds []string
	key   *clusterkey.Token // adopt this key; nil keeps the side's
	fresh bool              // set the node's own cluster aside and start without raft state
	other string            // the ID of the cluster joined, if known
	// begun, if not nil, hears once whether the restart begins (see
	// moveBegun); it must have room for the answer.
	begun chan<- moveBegun
}

// moveBegun says that a restart begins, where the node's own cluster
// goes and how many keys it holds (a fresh move), or why the move was
// dropped.
type moveBegun struct {
	aside string
	keys  int
	err   error
}

// answer tells whoever asked for m whether it begins.
func (m move) answer(b moveBegun) {
	if m.begun != nil {
		m.begun <- b
	}
}

// errStopping refuses the moves of an agent that stops.
var errStopping = fmt.Errorf("%w: the agent is stopping", api.ErrJoinRefused)

// maxQueuedMoves bounds the moves queued: one from the local API, and
// one from the server of each side started meanwhile (see otherCluster).
const maxQueuedMoves = 4

// moveQueue holds the moves asked for, made one at a time by serve.
type moveQueue struct {
	ch      chan move
	mu      sync.Mutex
	pending int  // queued or under way
	making  bool // serve makes one it took
	closed  bool // serve returned: no more moves
}

func newMoveQueue() *moveQueue { return &moveQueue{ch: make(chan move, maxQueuedMoves)} }

// ask queues a move for the local API, refusing it while another is
// queued or under way.
func (q *moveQueue) ask(m move) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	switch {
	case q.closed:
		return errStopping
	case q.pending > 0:
		return fmt.Errorf("%w: a restart to join another cluster is already under way; ask again once it is done "+
			"(graft members shows where the node is)", api.ErrJoinRefused)
	}
	q.pending++
	q.ch <- m // never blocks: nothing is queued
	return nil
}

// offer queues a move for a cluster server, reporting whether it could.
func (q *moveQueue) offer(m move) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return false
	}
	select {
	case q.ch <- m:
		q.pending++
		return true
	default:
		return false
	}
}

// serve makes the moves queued with do, one at a time, until ctx ends or
// do reports that the agent stops; moves still queued then are refused.
func (q *moveQueue) serve(ctx context.Context, do func(context.Context, move) bool) {
	defer q.close()
	for {
		select {
		case <-ctx.Done():
			return
		case m := <-q.ch:
			if !q.take(ctx) { // the agent stops: that comes first
				m.answer(moveBegun{err: errStopping})
				return
			}
			ok := do(ctx, m)
			q.done()
			if !ok {
				return
			}
		}
	}
}

// take reports whether serve makes the move it took: not once ctx has
// ended, when the move counts as refused.
func (q *moveQueue) take(ctx context.Context) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if ctx.Err() != nil {
		q.pending--
		return false
	}
	q.making = true
	return true
}

// commit reports whether the move under way may start its new cluster
// side: not once ctx has ended (the agent began to stop). It logs that the
// side starts under the queue's lock, which the agent's stop takes (see
// makingOne) after ending ctx and before it says it waits for the
// restart: a side started after that line is a bug, one started before it
// was under way when the agent began to stop.
func (q *moveQueue) commit(ctx context.Context, log *slog.Logger) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if ctx.Err() != nil {
		return false
	}
	log.Info("starting the restarted cluster side")
	return true
}

// done counts the move serve made.
func (q *moveQueue) done() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.pending--
	q.making = false
}

// busy reports whether a move is queued or under way: from the moment it
// is queued, since serve may have taken a move it has not begun yet.
func (q *moveQueue) busy() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.pending > 0
}

// makingOne reports whether serve makes a move it took.
func (q *moveQueue) makingOne() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.making
}

// close refuses the moves queued, and any asked for later.
func (q *moveQueue) close() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.closed = true
	for {
		select {
		case m := <-q.ch:
			q.pending--
			m.answer(moveBegun{err: errStopping})
		default:
			return
		}
	}
}

// otherCluster is the OnOtherCluster of the server of side generation
// gen: its --join seeds belong to another cluster, and the node never
// had a peer. It runs on the server's goroutine, so it only asks for the
// restart.
func (a *agentCluster) otherCluster(gen uint64, seeds []string) func(*cluster.OtherClusterError) {
	return func(other *cluster.OtherClusterError) {
		if !a.moves.offer(move{gen: gen, seeds: seeds, fresh: true, other: other.ClusterID}) {
			a.log.Error("cannot set this node's own cluster aside to join another: the agent is stopping, "+
				"or too many restarts are queued", "seeds", seeds, "cluster_id", other.ClusterID)
		}
	}
}

// join serves the local API's joins on side: a plain join, or, for a node
// that never had a peer, a restart with the key given, or with its own
// one-node cluster set aside when the addresses belong to another cluster
// (over the unix socket only). A node that had peers refuses both, saying
// how to move it; so does a one-shot run, whose cluster lives in memory.
func (a *agentCluster) join(side *clusterSide) apiserver.JoinFunc {
	return func(ctx context.Context, req api.JoinRequest) (api.JoinResult, error) {
		if a.oneShot {
			return api.JoinResult{}, fmt.Errorf("%w: this agent runs a cluster of its own in memory, for this run "+
				"only (--converged-exit without --join, --bootstrap-expect or --token): it joins nobody. Run it "+
				"without --converged-exit, or with --join and --token", api.ErrJoinRefused)
		}
		srv := side.srv
		if req.Token != "" {
			tok, err := clusterkey.Parse(req.Token)
			if err != nil {
				return api.JoinResult{}, fmt.Errorf("%w: %w", api.ErrJoinRefused, err)
			}
			if !tok.Equal(side.key.tok) {
				return a.adopt(ctx, side, req.Addrs, tok)
			}
		}
		n, err := srv.Join(req.Addrs)
		var other *cluster.OtherClusterError
		switch {
		case err == nil:
			return api.JoinResult{Joined: n}, nil
		case !errors.As(err, &other) || !srv.NeverHadPeer():
			return api.JoinResult{}, err
		case !req.OverSocket:
			return api.JoinResult{}, fmt.Errorf("the addresses belong to cluster %s, and joining it means setting "+
				"this node's own one-node cluster aside: %w", other.ClusterID, api.ErrSocketOnly)
		}
		b, err := a.ask(ctx, move{gen: side.gen, seeds: req.Addrs, fresh: true, other: other.ClusterID})
		if err != nil {
			return api.JoinResult{}, err
		}
		return api.JoinResult{Restarting: true, OtherCluster: other.ClusterID, SetAside: b.aside, SetAsideKeys: b.keys}, nil
	}
}

// adopt restarts side with the key tok to join addrs, if the node never
// had a peer.
func (a *agentCluster) adopt(ctx context.Context, side *clusterSide, addrs []string, tok clusterkey.Token) (api.JoinResult, error) {
	h, err := side.srv.History()
	switch {
	case err != nil:
		return api.JoinResult{}, fmt.Errorf("%w: cannot tell whether this node had peers: %w", api.ErrJoinRefused, err)
	case h.HadPeers():
		return api.JoinResult{}, fmt.Errorf("%w: %w", api.ErrJoinRefused, keyRefusal(a.dir, side.key.tok, tok, h))
	}
	if _, err := a.ask(ctx, move{gen: side.gen, seeds: addrs, key: &tok}); err != nil {
		return api.JoinResult{}, err
	}
	return api.JoinResult{Restarting: true, KeyFingerprint: tok.Fingerprint()}, nil
}

// ask asks for the restart m and waits until it begins, or is dropped.
func (a *agentCluster) ask(ctx context.Context, m move) (moveBegun, error) {
	begun := make(chan moveBegun, 1)
	m.begun = begun
	if err := a.moves.ask(m); err != nil {
		return moveBegun{}, err
	}
	select {
	case b := <-begun:
		return b, b.err
	case <-ctx.Done():
		return moveBegun{}, fmt.Errorf("the restart to join was asked for, but had not begun when the request "+
			"ended (the agent's log says whether it did): %w", ctx.Err())
	}
}

// restart makes the move m: it stops the cluster side, adopts the move's
// key or sets the node's own cluster aside, and starts a side that joins
// the move's seeds. A move asked for on an earlier side, or for a node
// that has had peers meanwhile, is dropped. It reports false when the
// agent stops: ctx ended, or the restart failed (see failure).
func (a *agentCluster) restart(ctx context.Context, m move) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	old := a.side
	if old == nil || old.gen != m.gen {
		a.log.Info("a restart to join another cluster, asked for before the cluster side restarted, is dropped",
			"seeds", m.seeds)
		m.answer(moveBegun{err: fmt.Errorf("%w: the cluster side restarted meanwhile: ask again", api.ErrJoinRefused)})
		return true
	}
	if h, err := old.srv.History(); err != nil || h.HadPeers() {
		a.log.Warn("not restarting the cluster side to join another cluster: this node has had peers meanwhile",
			"evidence", h.String(), "err", err)
		m.answer(moveBegun{err: fmt.Errorf("%w: this node has had peers meanwhile (%s)", api.ErrJoinRefused, h)})
		return true
	}
	var b moveBegun
	ownID, stateKey := old.srv.ClusterID(), old.srv.StateKeyFingerprint()
	if m.fresh {
		b.keys, b.aside = userKeys(ctx, old.srv), asidePath(a.dir, ownID)
	}
	if ctx.Err() != nil {
		m.answer(moveBegun{err: errStopping})
		return false
	}
	m.answer(b)
	a.log.Warn("restarting the cluster side to join another cluster", "seeds", m.seeds, "cluster_id", m.other)
	old.stop()
	a.side = nil
	side, err := a.remake(ctx, old, m, b, ownID, stateKey)
	switch {
	case err != nil:
		a.fail(fmt.Errorf("restarting the cluster side to join %s: %w", strings.Join(m.seeds, ", "), err))
		a.log.Error("could not restart the cluster side: stopping the agent", "err", err)
		a.shutdown()
		return false
	case side == nil:
		a.log.Warn("the agent stops: its cluster side is not restarted")
		return false
	}
	a.side = side
	a.rekeyDiscovery(side)
	return true
}

// rekeyDiscovery makes the beacon announce, under the key of side (the
// side a move started), the state of its server, and hear that key's
// nodes only: a node moved to another cluster is heard by that cluster's
// nodes, and follows them, not its old cluster's. Under mu.
func (a *agentCluster) rekeyDiscovery(side *clusterSide) {
	if a.disc == nil {
		return
	}
	secret, err := discovery.DeriveKey([]byte(side.key.tok.Secret()))
	if err == nil {
		err = a.disc.b.SetKey(secret)
	}
	if err != nil {
		a.log.Error("discovery: cannot announce this node under the key of the cluster it moved to: it is not "+
			"heard on the LAN, and hears the nodes of its old cluster's key", "err", err)
		return
	}
	id := side.srv.ClusterID()
	a.disc.b.SetState(id != "" || side.srv.Node().HasState(), id)
}

// remake starts the side that replaces old, which has stopped, to make m
// (as b says): nil if ctx ended first, the data dir left as it was or
// with the move complete. A node that had peers by the time old stopped
// (what its data dir says) is restarted as it was. The node's own
// cluster, set aside, takes the key its raft state was made under
// (stateKey, its fingerprint; see asideKey).
func (a *agentCluster) remake(ctx context.Context, old *clusterSide, m move, b moveBegun, ownID, stateKey string) (*clusterSide, error) {
	if ctx.Err() != nil {
		return nil, nil
	}
	h, err := cluster.ReadHistory(a.dir, a.o.hostname)
	if err != nil {
		return nil, err
	}
	if ctx.Err() != nil {
		return nil, nil
	}
	if h.HadPeers() {
		a.log.Error("this node had peers by the time its cluster side stopped: it stays in its cluster, and its "+
			"cluster side restarts as it was", "evidence", h.String())
		k := old.key
		k.created, k.replaced = false, ""
		if !a.moves.commit(ctx, a.log) {
			return nil, nil
		}
		return a.startSide(k, old.seeds)
	}
	key, err := a.nextKey(old.key, m)
	if err != nil {
		return nil, err
	}
	if m.fresh {
		own, why := asideKey(a.dir, old.key, stateKey)
		if err := setAside(a.dir, b.aside, own, m.seeds); err != nil {
			return nil, err
		}
		attrs := []any{"cluster_id", ownID, "keys", b.keys, "dir", b.aside,
			"read_it_with", "graft run --data-dir " + b.aside + " --cluster-addr 127.0.0.1:0 --gossip-addr 127.0.0.1:0, " +
				"then graft kv list --data-dir " + b.aside}
		if own != nil {
			attrs = append(attrs, "key_fingerprint", own.Fingerprint())
		}
		a.log.Warn("this node's own one-node cluster is set aside: none of its keys is in the cluster it joins", attrs...)
		if own == nil {
			a.log.Warn("no cluster key goes with the cluster set aside: "+why+"; an agent run on it makes a new "+
				"key (the data dir's old keys, token.*.old, went with it: one put in place as its token file is "+
				"used instead)", "dir", b.aside)
		}
	}
	if !a.moves.commit(ctx, a.log) {
		return nil, nil
	}
	return a.startSide(key, m.seeds)
}

// nextKey is the key of the restarted side: the move's, adopted, or the
// old side's.
func (a *agentCluster) nextKey(old clusterKey, m move) (clusterKey, error) {
	if m.key == nil {
		return clusterKey{tok: old.tok, path: old.path}, nil
	}
	return adoptKey(old.path, old.tok, *m.key)
}
