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

	"github.com/graftcm/graft/cluster"
	"github.com/graftcm/graft/cluster/clusterkey"
	"github.com/graftcm/graft/fsm"
	"github.com/graftcm/graft/internal/atomicfile"
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
// (none), own as its key (none if nil: see asideKey), the keys the data
// dir kept from earlier adoptions (token.*.old), and the node's name. The
// data dir then remembers seeds as its peers.
func setAside(dir, dest string, own *clusterkey.Token, seeds []string) error {
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
// written only after both. An old key that is the data dir's key (the
// cluster it joins, adopted, given up and adopted again) stays: no copy
// of that cluster's key goes with the node's own.
func stageAside(dir, tmp string, own *clusterkey.Token) error {
	if _, err := os.Stat(filepath.Join(dir, "raft")); err != nil {
		return fmt.Errorf("no raft state to set aside: %w", err)
	}
	if err := os.Mkdir(tmp, 0o700); err != nil {
		return err
	}
	if own != nil {
		if err := clusterkey.WriteFile(filepath.Join(tmp, tokenFile), *own); err != nil {
			return err
		}
	}
	if id, err := os.ReadFile(filepath.Join(dir, nodeIDFile)); err != nil {
		return err
	} else if err := atomicfile.Write(filepath.Join(tmp, nodeIDFile), id, 0o600, true); err != nil {
		return err
	}
	olds, err := oldKeys(dir)
	if err != nil {
		return err
	}
	kept, keptErr := readKey(filepath.Join(dir, tokenFile))
	for _, p := range olds {
		if k, err := readKey(p); keptErr == nil && err == nil && k.Equal(kept) {
			continue
		}
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
	staged, err := namesIn(dir, func(name string) bool {
		return strings.HasPrefix(name, "apart.") && strings.HasSuffix(name, stagingSuffix)
	})
	if err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	for _, tmp := range staged {
		if err := unstage(dir, tmp); err != nil {
			return fmt.Errorf("data dir: %s holds a set-aside of this node's cluster that did not complete, and it "+
				"cannot be undone: %w. %s", tmp, err, undoByHand(dir, tmp))
		}
		log.Warn("a set-aside of this node's own cluster did not complete (the agent stopped during it): undone; "+
			"the node is on its own cluster again, as before it was asked to join another", "dir", tmp)
	}
	return nil
}

// undoByHand says how to finish undoing by hand the set-aside staged in
// tmp, from what it holds of the node's cluster.
func undoByHand(dir, tmp string) string {
	var back []string
	if exists(filepath.Join(tmp, "raft")) {
		back = append(back, "raft/ (the data dir's own raft/, if any, is another state: move it away first)")
	}
	if exists(filepath.Join(tmp, cluster.PeersFile)) {
		back = append(back, cluster.PeersFile+" (replacing the data dir's)")
	}
	olds, _ := oldKeys(tmp)
	for _, p := range olds {
		back = append(back, filepath.Base(p))
	}
	if len(back) == 0 {
		return "It holds nothing of the node's cluster that the data dir lacks: remove it"
	}
	return fmt.Sprintf("Move its %s back into %s, then remove it", strings.Join(back, ", "), dir)
}

// namesIn returns the paths of the entries of dir whose names match. It
// reads the directory: its path is never taken for a pattern.
func namesIn(dir string, match func(name string) bool) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		if match(e.Name()) {
			out = append(out, filepath.Join(dir, e.Name()))
		}
	}
	return out, nil
}

// oldKeys returns the paths of the old keys (token.*.old) in dir.
func oldKeys(dir string) ([]string, error) {
	return namesIn(dir, func(name string) bool {
		return strings.HasPrefix(name, tokenFile+".") && strings.HasSuffix(name, ".old")
	})
}

// readKey reads the key in the file p.
func readKey(p string) (clusterkey.Token, error) {
	b, err := atomicfile.Read(p, 1<<10)
	if err != nil {
		return clusterkey.Token{}, err
	}
	return clusterkey.Parse(strings.TrimSpace(string(b)))
}

// unstage moves the staged raft state, peers file and old keys in tmp
// back into dir, keeps a staged key that the data dir lacks as an old
// key, and removes tmp with whatever else it holds (the node's name,
// files an agent stopped while it wrote them).
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
	olds, err := oldKeys(tmp)
	if err != nil {
		return err
	}
	for _, p := range olds {
		back := filepath.Join(dir, filepath.Base(p))
		switch {
		case !exists(back):
			if err := os.Rename(p, back); err != nil {
				return err
			}
		case !sameKey(p, back):
			return fmt.Errorf("%s holds another key than %s", p, back)
		}
	}
	if err := keepStagedKey(dir, tmp); err != nil {
		return err
	}
	return os.RemoveAll(tmp)
}

// keepStagedKey keeps the key staged in tmp, if the data dir holds it
// nowhere (not as its key, nor as an old one), as an old key.
func keepStagedKey(dir, tmp string) error {
	k, err := readKey(filepath.Join(tmp, tokenFile))
	if err != nil {
		return nil // none, or one an agent stopped while it wrote it
	}
	if cur, err := readKey(filepath.Join(dir, tokenFile)); err == nil && cur.Equal(k) {
		return nil
	}
	kept := filepath.Join(dir, tokenFile+"."+k.Fingerprint()+".old")
	if exists(kept) {
		if sameKey(filepath.Join(tmp, tokenFile), kept) {
			return nil
		}
		return fmt.Errorf("%s holds another key than %s", filepath.Join(tmp, tokenFile), kept)
	}
	return os.Rename(filepath.Join(tmp, tokenFile), kept)
}

// sameKey reports whether the files a and b hold the same key, however
// written (a key written by hand may lack the newline graft writes), or
// else the same bytes (a missing a counts as the same: there is nothing
// to lose).
func sameKey(a, b string) bool {
	x, err := readKey(a)
	y, err2 := readKey(b)
	if err == nil && err2 == nil {
		return x.Equal(y)
	}
	return sameContent(a, b)
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
