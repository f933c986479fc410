package raftnode

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/graftcm/graft/cluster/clusterkey"
	"github.com/graftcm/graft/cluster/internal/logtest"
	"github.com/graftcm/graft/cluster/transport"
	"github.com/graftcm/graft/fsm"
	"github.com/hashicorp/raft"
)

// openKeyedNode starts a node on loopback whose cluster port is keyed by tok.
func openKeyedNode(t *testing.T, id string, tok clusterkey.Token, bootstrap bool, logs *logtest.Recorder, edit func(*Config)) *Node {
	t.Helper()
	cfg := TestConfig()
	cfg.NodeID, cfg.DataDir, cfg.Bootstrap = id, t.TempDir(), bootstrap
	cfg.Logger = slog.New(logs)
	// Production's timeouts, as openNode's (tcp_test.go): at TestConfig's
	// 100 ms heartbeat a loaded machine made a lose its leadership before
	// it added c, and it never dialled c (CI failed so once).
	def := DefaultConfig()
	cfg.HeartbeatTimeout, cfg.ElectionTimeout, cfg.LeaderLeaseTimeout = def.HeartbeatTimeout, def.ElectionTimeout, def.LeaderLeaseTimeout
	var err error
	if cfg.ServerTLS, cfg.ClientTLS, err = tok.ClusterTLS(id); err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		edit(&cfg)
	}
	n, err := Open(cfg, fsm.New(fsm.Options{}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

func putCmd(key, value string) []fsm.Command {
	return []fsm.Command{{Op: fsm.OpPut, Key: key, Value: []byte(value)}}
}

// Nodes keyed by one token form a cluster over the TLS cluster port; a node
// keyed by another token cannot join it, read it or write to it, and
// neither can a peer without TLS.
func TestClusterTLSNodes(t *testing.T) {
	tok, other := newToken(t), newToken(t)
	aLogs, bLogs, cLogs := logtest.New(), logtest.New(), logtest.New()
	a := openKeyedNode(t, "a", tok, true, aLogs, nil)
	b := openKeyedNode(t, "b", tok, false, bLogs, nil)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	if err := a.Linearize(ctx); err != nil { // a leads once it answers
		t.Fatal(err)
	}
	if err := a.raft.AddVoter(raft.ServerID(b.ID()), raft.ServerAddress(b.Addr()), 0, 10*time.Second).Error(); err != nil {
		t.Fatalf("adding b: %v", err)
	}
	if _, err := b.Apply(ctx, putCmd("from-b", "1")); err != nil {
		t.Fatalf("write on b: %v", err)
	}
	if err := a.Linearize(ctx); err != nil {
		t.Fatal(err)
	}
	if _, ok := a.FSM().Get("from-b"); !ok {
		t.Fatal("b's write did not reach a")
	}

	// c holds another key. Adding it commits (a and b are a quorum of
	// three) or times out, but c never gets a byte of the log.
	c := openKeyedNode(t, "c", other, false, cLogs, func(cfg *Config) { cfg.ForwardTimeout = 300 * time.Millisecond })
	// The leader adds c: a, or b if a lost its 50 ms lease meanwhile (on a
	// loaded machine it can).
	var leader *Node
	var leaderLogs *logtest.Recorder
	for deadline := time.Now().Add(10 * time.Second); ; {
		if b.IsLeader() {
			leader, leaderLogs = b, bLogs
		} else {
			leader, leaderLogs = a, aLogs
		}
		err := leader.raft.AddVoter(raft.ServerID(c.ID()), raft.ServerAddress(c.Addr()), 0, time.Second).Error()
		t.Logf("AddVoter(c) on %s: %v", leader.ID(), err)
		if !errors.Is(err, raft.ErrNotLeader) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("neither a nor b led within 10s")
		}
		<-time.After(10 * time.Millisecond) // poll for the next leader
	}
	// The leader's raft fails to reach c: its client refuses c's
	// certificate...
	line := leaderLogs.Wait(t, 10*time.Second, "TLS handshake with "+c.Addr(), "certificate signed by unknown authority")
	t.Logf("%s logs: %s", leader.ID(), line)
	// ...and c's cluster port logs the refusal.
	line = cLogs.Wait(t, 10*time.Second, "TLS handshake failed", "bad certificate")
	t.Logf("c logs: %s", line)
	if idx := c.raft.LastIndex(); idx != 0 {
		t.Errorf("c has log index %d, want 0", idx)
	}
	if kvs, _ := c.FSM().List("", 0); len(kvs) != 0 {
		t.Errorf("c read %d keys of a cluster it has no key for", len(kvs))
	}
	if _, err := c.Apply(t.Context(), putCmd("from-c", "1")); !errors.Is(err, ErrNoLeader) {
		t.Errorf("write on c: %v, want ErrNoLeader", err)
	}
	// Told where the leader is, c still cannot forward a write to it.
	data, err := fsm.EncodeBatch(putCmd("from-c", "2"))
	if err != nil {
		t.Fatal(err)
	}
	callCtx, callCancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer callCancel()
	resp, err := c.rpc.Call(callCtx, a.Addr(), &transport.Request{Op: transport.OpApply, Data: data})
	if err == nil {
		t.Fatalf("c forwarded a write to a: %+v", resp)
	}
	if !transport.NotSent(err) || !strings.Contains(err.Error(), "certificate signed by unknown authority") {
		t.Errorf("forwarding from c: %v, want a not-sent TLS verification error", err)
	}
	t.Logf("c forwarding to a: %v", err)
	line = aLogs.Wait(t, 5*time.Second, "TLS handshake failed", "bad certificate")
	t.Logf("a logs: %s", line)

	// A peer without TLS gets nothing either.
	raw, err := net.Dial("tcp", a.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	_ = raw.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := raw.Write([]byte{transport.ConnRPC, 0, 0, 0, 1, 0x80}); err != nil {
		t.Fatal(err)
	}
	if n, err := raw.Read(make([]byte, 64)); err == nil {
		t.Errorf("plaintext peer read %d bytes", n)
	}
	aLogs.Wait(t, 5*time.Second, "TLS handshake failed", "first record does not look like a TLS handshake")

	// The keyed cluster still takes writes.
	if _, err := b.Apply(ctx, putCmd("after-c", "1")); err != nil {
		t.Fatalf("write on b after c: %v", err)
	}
	if _, ok := c.FSM().Get("after-c"); ok {
		t.Error("c read a write")
	}
}
