package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/graftcm/graft/api"
	"github.com/graftcm/graft/atomicfile"
	"github.com/graftcm/graft/cluster"
	"github.com/graftcm/graft/fsm"
)

// A node that never had a peer holds a key and a cluster nobody else
// has, so it may give both up to join another cluster: it adopts the
// other cluster's key, and it sets its own one-node cluster aside (raft
// cannot merge two clusters' states), moving that cluster's state out of
// the data dir into a directory of its own, which an agent can run on to
// read the keys it held: none of them is copied into the cluster joined.
// Either means a new cluster server, so the agent restarts its cluster
// side (server, World and local API); the engine runs on meanwhile.

// move is a restart of the cluster side to join another cluster.
type move struct {
	seeds []string
	key   *cluster.Token // adopt this key; nil keeps the side's
	fresh bool           // set this node's own cluster aside and start without raft state
	aside string         // where to set it aside ("": chosen by the restart)
	other string         // the ID of the cluster joined, if known
}

// request asks for a restart, failing if one is asked for already.
func (a *agentCluster) request(m move) error {
	select {
	case a.moves <- m:
		return nil
	default:
		return fmt.Errorf("%w: a restart to join another cluster is already under way", api.ErrJoinRefused)
	}
}

// otherCluster is the cluster server's OnOtherCluster: its --join seeds
// belong to another cluster, and the node never had a peer. It runs on
// the server's goroutine, so it only asks for the restart.
func (a *agentCluster) otherCluster(seeds []string) func(*cluster.OtherClusterError) {
	return func(other *cluster.OtherClusterError) {
		if err := a.request(move{seeds: seeds, fresh: true, other: other.ClusterID}); err != nil {
			a.log.Error("cannot set this node's own cluster aside to join another", "err", err)
		}
	}
}

// join serves the local API's joins on side: a plain join, or, for a node
// that never had a peer, a restart with the key given, or with its own
// one-node cluster set aside when the addresses belong to another cluster.
// A node that had peers refuses both, saying how to move it.
func (a *agentCluster) join(side *clusterSide) api.JoinFunc {
	return func(_ context.Context, req api.JoinRequest) (api.JoinResult, error) {
		srv := side.srv
		if req.Token != "" {
			tok, err := cluster.ParseToken(req.Token)
			if err != nil {
				return api.JoinResult{}, fmt.Errorf("%w: %w", api.ErrJoinRefused, err)
			}
			if !tok.Equal(side.key.tok) {
				if !srv.NeverHadPeer() {
					return api.JoinResult{}, fmt.Errorf("%w: %w", api.ErrJoinRefused, keyRefusal(a.dir, side.key.tok, tok))
				}
				if err := a.request(move{seeds: req.Addrs, key: &tok}); err != nil {
					return api.JoinResult{}, err
				}
				return api.JoinResult{Restarting: true, KeyFingerprint: tok.Fingerprint()}, nil
			}
		}
		n, err := srv.Join(req.Addrs)
		var other *cluster.OtherClusterError
		switch {
		case err == nil:
			return api.JoinResult{Joined: n}, nil
		case !errors.As(err, &other) || !srv.NeverHadPeer():
			return api.JoinResult{}, err
		}
		m := move{seeds: req.Addrs, fresh: true, other: other.ClusterID}
		if !a.oneShot {
			m.aside = asidePath(a.dir, srv.ClusterID())
		}
		if err := a.request(m); err != nil {
			return api.JoinResult{}, err
		}
		return api.JoinResult{Restarting: true, OtherCluster: other.ClusterID, SetAside: m.aside,
			SetAsideKeys: userKeys(srv)}, nil
	}
}

// serveMoves makes the restarts asked for until ctx ends or one fails.
func (a *agentCluster) serveMoves(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case m := <-a.moves:
			if !a.restart(m) {
				return nil
			}
		}
	}
}

// restart stops the cluster side, adopts the move's key or sets the
// node's own cluster aside, and starts a side that joins the move's seeds.
// If that fails, the agent stops (see failure).
func (a *agentCluster) restart(m move) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	old := a.side
	ownID, keys := old.srv.ClusterID(), userKeys(old.srv)
	if m.fresh && m.aside == "" && !a.oneShot {
		m.aside = asidePath(a.dir, ownID)
	}
	a.log.Warn("restarting the cluster side to join another cluster", "seeds", m.seeds, "cluster_id", m.other)
	old.stop()
	a.side = nil
	key, err := a.nextKey(old.key, m)
	if err == nil && m.fresh {
		err = a.setAside(m.aside, old.key.tok, ownID, keys)
	}
	var side *clusterSide
	if err == nil {
		side, err = a.startSide(key, m.seeds)
	}
	if err != nil {
		a.err = fmt.Errorf("restarting the cluster side to join %s: %w", strings.Join(m.seeds, ", "), err)
		a.log.Error("could not restart the cluster side: stopping the agent", "err", err)
		a.shutdown()
		return false
	}
	a.side = side
	return true
}

// nextKey is the key of the restarted side: the move's, adopted, or the
// old side's.
func (a *agentCluster) nextKey(old clusterKey, m move) (clusterKey, error) {
	switch {
	case m.key == nil:
		return clusterKey{tok: old.tok, path: old.path}, nil
	case a.oneShot:
		return clusterKey{tok: *m.key}, nil
	}
	return adoptKey(old.path, old.tok, *m.key)
}

// setAside moves this node's own one-node cluster (cluster ID id, keys
// keys, under key tok) out of the data dir into dest, which becomes a data
// dir of its own, and says so.
func (a *agentCluster) setAside(dest string, tok cluster.Token, id string, keys int) error {
	if a.oneShot {
		a.log.Warn("this node's own one-node cluster is dropped: it was in memory", "cluster_id", id, "keys", keys)
		return nil
	}
	if err := setAside(a.dir, dest, tok); err != nil {
		return err
	}
	a.log.Warn("this node's own one-node cluster is set aside: none of its keys is in the cluster it joins",
		"cluster_id", id, "keys", keys, "dir", dest,
		"read_it_with", "graft run --data-dir "+dest+" --cluster-addr 127.0.0.1:0 --gossip-addr 127.0.0.1:0, then graft kv list --data-dir "+dest)
	return nil
}

// setAside moves the raft state and the remembered peers of the data dir
// dir into dest, a new directory, with the key tok and the node's name:
// a data dir an agent can run on.
func setAside(dir, dest string, tok cluster.Token) error {
	if err := os.Mkdir(dest, 0o700); err != nil {
		return fmt.Errorf("setting this node's cluster aside: %w", err)
	}
	for _, name := range []string{"raft", cluster.PeersFile} {
		if err := os.Rename(filepath.Join(dir, name), filepath.Join(dest, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("setting this node's cluster aside: %w", err)
		}
	}
	if err := cluster.WriteTokenFile(filepath.Join(dest, tokenFile), tok); err != nil {
		return fmt.Errorf("setting this node's cluster aside: %w", err)
	}
	id, err := os.ReadFile(filepath.Join(dir, nodeIDFile))
	if err == nil {
		err = atomicfile.Write(filepath.Join(dest, nodeIDFile), id, 0o600, true)
	}
	if err != nil {
		return fmt.Errorf("setting this node's cluster aside: %w", err)
	}
	return nil
}

// asidePath names a new directory in dir for a cluster set aside:
// apart.ID, or apart.ID.2 and so on if that is taken.
func asidePath(dir, id string) string {
	if id == "" {
		id = "unknown"
	}
	base := filepath.Join(dir, "apart."+id)
	p := base
	for i := 2; ; i++ {
		if _, err := os.Lstat(p); errors.Is(err, fs.ErrNotExist) {
			return p
		}
		p = base + "." + strconv.Itoa(i)
	}
}

// settleWait bounds how long userKeys waits for a node's state to hold
// its whole log.
const settleWait = 5 * time.Second

// userKeys counts the keys a server's state holds, graft's own aside,
// once its node has applied the log it started with (a node just
// restarted has not); -1 if it has not within settleWait.
func userKeys(srv *cluster.Server) int {
	deadline := time.NewTimer(settleWait)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !srv.Node().CaughtUp() {
		select {
		case <-deadline.C:
			return -1
		case <-tick.C:
		}
	}
	kvs, _ := srv.Node().FSM().List("", 0)
	n := 0
	for _, kv := range kvs {
		if !strings.HasPrefix(kv.Key, fsm.InternalPrefix) {
			n++
		}
	}
	return n
}
