package cluster

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.etcd.io/bbolt"

	"github.com/graftcm/graft/internal/atomicfile"
)

// History is what shows that a node has had peers: the other servers its
// raft configuration names, the other nodes its gossip ring has shown
// while it runs, and the gossip addresses it remembers (the data dir's
// peers file, which keeps every member a node has seen). A node with none
// never had a peer: nobody else holds its key or its state, so it may
// adopt another cluster key, or set its own one-node cluster aside to
// join another cluster.
type History struct {
	Servers    []string // other servers in its raft configuration
	Ring       []string // other nodes its ring has shown (a running node only)
	Remembered []string // gossip addresses it remembers
	// PeersFile is where it remembers them ("" for a peer store that is
	// not a file).
	PeersFile string
}

// HadPeers reports whether the node has had peers.
func (h History) HadPeers() bool {
	return len(h.Servers) > 0 || len(h.Ring) > 0 || len(h.Remembered) > 0
}

// String says what shows the node has had peers, "" if nothing does.
func (h History) String() string {
	var parts []string
	if len(h.Servers) > 0 {
		parts = append(parts, "its raft configuration names "+strings.Join(h.Servers, ", "))
	}
	if len(h.Ring) > 0 {
		parts = append(parts, "its gossip ring has shown "+strings.Join(h.Ring, ", "))
	}
	if len(h.Remembered) > 0 {
		where := "its peer store"
		if h.PeersFile != "" {
			where = h.PeersFile
		}
		parts = append(parts, fmt.Sprintf("%s remembers %s", where, strings.Join(h.Remembered, ", ")))
	}
	return strings.Join(parts, "; ")
}

// History returns what shows this running node has had peers. It fails
// if the remembered peers cannot be read.
func (s *Server) History() (History, error) {
	h := History{Servers: s.otherServers()}
	if s.cfg.Raft.DataDir != "" && !s.cfg.Raft.InMemory {
		h.PeersFile = filepath.Join(s.cfg.Raft.DataDir, peersFile)
	}
	s.goneMu.Lock()
	for name := range s.addrs {
		if name != s.cfg.Raft.NodeID {
			h.Ring = append(h.Ring, name)
		}
	}
	for name := range s.gone {
		if _, seen := s.addrs[name]; !seen && name != s.cfg.Raft.NodeID {
			h.Ring = append(h.Ring, name)
		}
	}
	s.goneMu.Unlock()
	slices.Sort(h.Ring)
	if s.peers != nil {
		addrs, err := s.peers.Load()
		if err != nil {
			return h, fmt.Errorf("cluster: reading the remembered peers: %w", err)
		}
		h.Remembered = addrs
	}
	return h, nil
}

// NeverHadPeer reports whether this node has never had a peer (see
// History); a node whose remembered peers cannot be read is taken to
// have had some.
func (s *Server) NeverHadPeer() bool {
	h, err := s.History()
	return err == nil && !h.HadPeers()
}

// otherServers lists the other servers in this node's raft configuration.
func (s *Server) otherServers() []string {
	servers, err := s.node.Configuration()
	if err != nil {
		return nil
	}
	var out []string
	for _, srv := range servers {
		if string(srv.ID) != s.cfg.Raft.NodeID {
			out = append(out, string(srv.ID))
		}
	}
	return out
}

// ReadHistory reads what the data dir dir of node nodeID holds of the
// peers its node has had: the other servers of the raft configuration in
// its raft state, and the gossip addresses it remembers. It starts
// nothing, so it says what the node had before its server starts (a
// server that runs may meet peers at any moment); the data dir's raft
// state must not be open.
func ReadHistory(dir, nodeID string) (History, error) {
	h := History{PeersFile: filepath.Join(dir, peersFile)}
	addrs, err := RememberedPeers(dir)
	if err != nil {
		return h, err
	}
	h.Remembered = addrs
	servers, err := persistedServers(filepath.Join(dir, "raft"), nodeID)
	if err != nil {
		return h, fmt.Errorf("cluster: reading the raft configuration in %s: %w", dir, err)
	}
	for _, id := range servers {
		if id != nodeID {
			h.Servers = append(h.Servers, id)
		}
	}
	return h, nil
}

// persistedServers returns the servers of the latest raft configuration
// kept in the raft directory dir (none if it holds no raft state), read
// without starting raft: read-only, and without restoring the snapshot's
// data.
func persistedServers(dir, nodeID string) ([]string, error) {
	db := filepath.Join(dir, "raft.db")
	if _, err := os.Stat(db); errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	store, err := raftboltdb.New(raftboltdb.Options{Path: db,
		BoltOptions: &bbolt.Options{ReadOnly: true, Timeout: 5 * time.Second}})
	if err != nil {
		return nil, err
	}
	defer store.Close()
	var snaps raft.SnapshotStore = raft.NewInmemSnapshotStore()
	if _, err := os.Stat(filepath.Join(dir, "snapshots")); err == nil {
		if snaps, err = raft.NewFileSnapshotStoreWithLogger(dir, 2, hclog.NewNullLogger()); err != nil {
			return nil, err
		}
	}
	if nodeID == "" {
		nodeID = "reader"
	}
	conf := raft.DefaultConfig()
	conf.LocalID = raft.ServerID(nodeID)
	conf.Logger = hclog.NewNullLogger()
	conf.NoSnapshotRestoreOnStart = true
	_, trans := raft.NewInmemTransport("")
	defer trans.Close()
	cfg, err := raft.GetConfiguration(conf, discardFSM{}, store, unsavedStable{store}, snaps, trans)
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(cfg.Servers))
	for _, srv := range cfg.Servers {
		out = append(out, string(srv.ID))
	}
	return out, nil
}

// unsavedStable is a read-only stable store: what raft writes when it
// opens its state (its current term, unchanged) is not saved.
type unsavedStable struct{ raft.StableStore }

func (unsavedStable) Set([]byte, []byte) error       { return nil }
func (unsavedStable) SetUint64([]byte, uint64) error { return nil }

// discardFSM is the state machine raft is given to read a configuration:
// it is never applied to nor restored.
type discardFSM struct{}

func (discardFSM) Apply(*raft.Log) any { return nil }
func (discardFSM) Snapshot() (raft.FSMSnapshot, error) {
	return nil, errors.New("cluster: no snapshot of a configuration read")
}
func (discardFSM) Restore(r io.ReadCloser) error { return r.Close() }

// RememberedPeers returns the gossip addresses of the members a node on
// the data dir dir has seen (the file its servers keep; nil if none).
func RememberedPeers(dir string) ([]string, error) {
	addrs, err := filePeers(filepath.Join(dir, peersFile)).Load()
	if err != nil {
		return nil, fmt.Errorf("cluster: remembered peers: %w", err)
	}
	return addrs, nil
}

// RememberPeers makes the data dir dir remember the gossip addresses
// addrs, as if its node had seen members there: a node without raft state
// that remembers peers waits to be added to their cluster rather than
// start one of its own, and tries them when it starts.
func RememberPeers(dir string, addrs []string) error {
	p := filepath.Join(dir, peersFile)
	b, err := json.Marshal(addrs)
	if err == nil {
		err = atomicfile.Write(p, b, 0o600, true)
	}
	if err != nil {
		return fmt.Errorf("cluster: writing %s: %w", p, err)
	}
	return nil
}

// PeersFile is the name of the file, in a data dir, that remembers the
// gossip addresses of the members its node has seen.
const PeersFile = peersFile
