package cluster_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/graftcm/graft/cluster"
	"github.com/graftcm/graft/cluster/clusterkey"
	"github.com/graftcm/graft/cluster/raftnode"
	"github.com/graftcm/graft/fsm"
)

// restartable is a server of the production stack on loopback whose
// ports and data dir stay the same across restarts.
type restartable struct {
	t   *testing.T
	cfg cluster.ServerConfig
	srv *cluster.Server
}

func startRestartable(t *testing.T, id string, tok *clusterkey.Token, join []string) *restartable {
	t.Helper()
	cfg := cluster.TestServerConfig()
	cfg.Raft.NodeID, cfg.Raft.DataDir = id, t.TempDir()
	cfg.Token, cfg.Join = tok, join
	r := &restartable{t: t, cfg: cfg}
	r.start()
	// Restarts reuse the ports the first start was given.
	r.cfg.Raft.BindAddr, r.cfg.GossipBind = r.srv.Node().Addr(), r.srv.GossipAddr()
	t.Cleanup(func() { r.srv.Close() })
	return r
}

func (r *restartable) start() {
	r.t.Helper()
	// Another process may bind a port this one just freed; it gives it
	// back soon (tests bind port 0 for moments), so try again a while.
	deadline := time.Now().Add(10 * time.Second)
	for {
		s, err := cluster.StartServer(r.cfg, cluster.ServerDeps{})
		if err == nil {
			r.srv = s
			return
		}
		if !errors.Is(err, syscall.EADDRINUSE) || time.Now().After(deadline) {
			r.t.Fatalf("starting %s: %v", r.cfg.Raft.NodeID, err)
		}
		<-time.After(50 * time.Millisecond)
	}
}

func (r *restartable) restart() {
	r.t.Helper()
	if err := r.srv.Close(); err != nil {
		r.t.Fatalf("closing %s: %v", r.cfg.Raft.NodeID, err)
	}
	r.start()
}

// slow is a context for writes on a machine so loaded that the test
// timings' 100 ms elections can come one after another.
func slow(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// put writes key through n, again while the outcome is unknown: under load
// the leader may lose its leadership while committing the write, which
// raft allows, and a put of the same value may be applied twice.
func put(ctx context.Context, n *raftnode.Node, key string, value []byte) error {
	for {
		_, err := n.Apply(ctx, []fsm.Command{{Op: fsm.OpPut, Key: key, Value: value}})
		if !errors.Is(err, raftnode.ErrAmbiguous) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(50 * time.Millisecond): // a new leader, soon
		}
	}
}

func voters(n *raftnode.Node) int {
	v := 0
	for _, s := range n.Status().Servers {
		if s.Suffrage == "voter" {
			v++
		}
	}
	return v
}

// A node restarted into a live cluster crashed 8 times in 27 restarts (3
// in a row with an 8.5 MB snapshot): the cluster port served the leader's
// stats RPCs while the snapshot was still being restored, before raft
// existed. Restarted 50 times over an 8 MB snapshot, the node never
// crashes, and writes through it work after every restart.
func TestRestartLoopWithBigSnapshotNeverCrashes(t *testing.T) {
	restarts := 50
	if testing.Short() {
		restarts = 5
	}
	tok, err := clusterkey.Generate()
	if err != nil {
		t.Fatal(err)
	}
	a := startRestartable(t, "a", &tok, nil)
	waitFor(t, 20*time.Second, "a leads", a.srv.Node().IsLeader)
	b := startRestartable(t, "b", &tok, []string{a.srv.GossipAddr()})
	c := startRestartable(t, "c", &tok, []string{a.srv.GossipAddr()})
	waitFor(t, 2*time.Minute, "three voters", func() bool { return voters(a.srv.Node()) == 3 })

	value := bytes.Repeat([]byte("x"), 128<<10)
	for i := range 64 { // 8 MiB of state
		if err := put(slow(t), b.srv.Node(), fmt.Sprint("big/", i), value); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.srv.Node().Linearize(slow(t)); err != nil {
		t.Fatal(err)
	}
	if err := c.srv.Node().Snapshot(); err != nil {
		t.Fatalf("snapshot on c: %v", err)
	}

	start := time.Now()
	for i := range restarts {
		c.restart()
		key := fmt.Sprint("restart/", i)
		if err := put(slow(t), c.srv.Node(), key, []byte("ok")); err != nil {
			t.Fatalf("restart %d: a write through c: %v", i, err)
		}
		if _, ok := c.srv.Node().FSM().Get("big/63"); !ok {
			t.Fatalf("restart %d: c lost its state", i)
		}
	}
	t.Logf("%d restarts in %v", restarts, time.Since(start).Round(time.Millisecond))
}
