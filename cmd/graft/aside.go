package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/graftcm/graft/atomicfile"
	"github.com/graftcm/graft/cluster"
	"github.com/graftcm/graft/fsm"
)

// A node that sets its own one-node cluster aside moves that cluster's
// state out of its data dir into apart.CLUSTER-ID, a data dir of its own
// that an agent can run on, and then starts without raft state to join
// another cluster. The move is staged in apart.CLUSTER-ID.tmp and renamed
// once complete; an agent that stopped half-way (a crash, a kill) finds
// the staging directory at its next start and puts everything back (see
// undoSetAside), so the node is on its own cluster again, as before it was
// asked to move. Once complete, the data dir remembers the seeds of the
// cluster it joins as its peers, so an agent restarted before it is in
// waits to be added to that cluster rather than start a new one.

// stagingSuffix names the directory a set-aside is staged in.
const stagingSuffix = ".tmp"

// setAside moves the node's own one-node cluster out of the data dir dir
// into dest, a new data dir: its raft state and the peers it remembers
// (none), own as its key, the keys the data dir kept from earlier
// adoptions (token.*.old), and the node's name. The data dir then
// remembers seeds as its peers.
func setAside(dir, dest string, own cluster.Token, seeds []string) error {
	if err := stageAside(dir, dest+stagingSuffix, own); err != nil {
		return fmt.Errorf("setting this node's cluster aside: %w", err)
	}
	if err := cluster.RememberPeers(dir, seeds); err != nil {
		return fmt.Errorf("setting this node's cluster aside: %w", err)
	}
	if err := os.Rename(dest+stagingSuffix, dest); err != nil {
		return fmt.Errorf("setting this node's cluster aside: %w", err)
	}
	return nil
}

// stageAside moves the cluster into tmp, in an order undoSetAside can
// tell apart: the peers file before the raft state, and the seeds
// written only after both.
func stageAside(dir, tmp string, own cluster.Token) error {
	if _, err := os.Stat(filepath.Join(dir, "raft")); err != nil {
		return fmt.Errorf("no raft state to set aside: %w", err)
	}
	if err := os.Mkdir(tmp, 0o700); err != nil {
		return err
	}
	if err := cluster.WriteTokenFile(filepath.Join(tmp, tokenFile), own); err != nil {
		return err
	}
	if id, err := os.ReadFile(filepath.Join(dir, nodeIDFile)); err != nil {
		return err
	} else if err := atomicfile.Write(filepath.Join(tmp, nodeIDFile), id, 0o600, true); err != nil {
		return err
	}
	olds, err := filepath.Glob(filepath.Join(dir, tokenFile+".*.old"))
	if err != nil {
		return err
	}
	for _, p := range olds {
		if err := os.Rename(p, filepath.Join(tmp, filepath.Base(p))); err != nil {
			return err
		}
	}
	for _, name := range []string{cluster.PeersFile, "raft"} {
		if err := os.Rename(filepath.Join(dir, name), filepath.Join(tmp, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}

// undoSetAside puts back what a set-aside that did not complete (see
// setAside) moved out of the data dir dir, and removes its staging
// directory. It fails, naming what to do, if it cannot.
func undoSetAside(dir string, log *slog.Logger) error {
	staged, err := filepath.Glob(filepath.Join(dir, "apart.*"+stagingSuffix))
	if err != nil {
		return err
	}
	for _, tmp := range staged {
		if err := unstage(dir, tmp); err != nil {
			return fmt.Errorf("data dir: %s holds a set-aside of this node's cluster that did not complete, and it "+
				"cannot be undone: %w. Move its raft/, %s and token.*.old back into %s (replacing %s) and remove it",
				tmp, err, cluster.PeersFile, dir, cluster.PeersFile)
		}
		log.Warn("a set-aside of this node's own cluster did not complete (the agent stopped during it): undone; "+
			"the node is on its own cluster again, as before it was asked to join another", "dir", tmp)
	}
	return nil
}

// unstage moves the staged raft state, peers file and old keys in tmp
// back into dir and removes tmp.
func unstage(dir, tmp string) error {
	raftMoved := exists(filepath.Join(tmp, "raft"))
	if raftMoved && exists(filepath.Join(dir, "raft")) {
		return errors.New("both hold raft state")
	}
	// Once the raft state moved, the data dir's peers file is the seeds
	// (or none); before, the staged one, if any, is the node's own.
	switch {
	case exists(filepath.Join(tmp, cluster.PeersFile)):
		if err := os.Rename(filepath.Join(tmp, cluster.PeersFile), filepath.Join(dir, cluster.PeersFile)); err != nil {
			return err
		}
	case raftMoved:
		if err := os.Remove(filepath.Join(dir, cluster.PeersFile)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	if raftMoved {
		if err := os.Rename(filepath.Join(tmp, "raft"), filepath.Join(dir, "raft")); err != nil {
			return err
		}
	}
	olds, err := filepath.Glob(filepath.Join(tmp, tokenFile+".*.old"))
	if err != nil {
		return err
	}
	for _, p := range olds {
		back := filepath.Join(dir, filepath.Base(p))
		if exists(back) {
			continue // left in tmp: removed below if it is the same key
		}
		if err := os.Rename(p, back); err != nil {
			return err
		}
	}
	for _, name := range append([]string{tokenFile, nodeIDFile}, olds...) {
		p := filepath.Join(tmp, filepath.Base(name))
		if name != tokenFile && name != nodeIDFile && !sameContent(p, filepath.Join(dir, filepath.Base(name))) {
			continue
		}
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return os.Remove(tmp) // fails if it holds anything else
}

// sameContent reports whether the files a and b hold the same bytes (a
// missing a counts as the same: there is nothing to lose).
func sameContent(a, b string) bool {
	x, err := os.ReadFile(a)
	if errors.Is(err, fs.ErrNotExist) {
		return true
	}
	y, err2 := os.ReadFile(b)
	return err == nil && err2 == nil && string(x) == string(y)
}

// exists reports whether path exists.
func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

// asidePath names a new directory in dir for a cluster set aside:
// apart.ID, or apart.ID.2 and so on if that is taken (or staged).
func asidePath(dir, id string) string {
	if id == "" {
		id = "unknown"
	}
	base := filepath.Join(dir, "apart."+id)
	p := base
	for i := 2; exists(p) || exists(p+stagingSuffix); i++ {
		p = base + "." + strconv.Itoa(i)
	}
	return p
}

// settleWait bounds how long userKeys waits for a node's state to hold
// its whole log.
const settleWait = 5 * time.Second

// userKeys counts the keys a server's state holds, graft's own aside,
// once its node has applied the log it started with (a node just
// restarted has not); -1 if it has not within settleWait, or ctx ended.
func userKeys(ctx context.Context, srv *cluster.Server) int {
	deadline := time.NewTimer(settleWait)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !srv.Node().CaughtUp() {
		select {
		case <-ctx.Done():
			return -1
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
