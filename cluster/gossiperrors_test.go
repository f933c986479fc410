package cluster_test

import (
	"errors"
	"net"
	"syscall"
	"testing"

	"github.com/graftcm/graft/cluster"
	"github.com/graftcm/graft/cluster/clusterkey"
)

// memberlist flattens its errors to text; a taken gossip port still comes
// out as an error callers match with errors.Is, told from the cluster
// port's.
func TestGossipPortInUseMatchesItsSentinel(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	tok, err := clusterkey.Generate()
	if err != nil {
		t.Fatal(err)
	}
	cfg := cluster.TestServerConfig()
	cfg.Token = &tok
	cfg.Raft.NodeID, cfg.Raft.DataDir = "a", t.TempDir()
	cfg.GossipBind = ln.Addr().String()
	s, err := cluster.StartServer(cfg, cluster.ServerDeps{})
	if err == nil {
		s.Close()
		t.Fatal("started on a gossip port in use")
	}
	if !errors.Is(err, cluster.ErrGossipPortInUse) || !errors.Is(err, syscall.EADDRINUSE) || errors.Is(err, cluster.ErrNoAdvertiseAddr) {
		t.Errorf("error %v: want ErrGossipPortInUse and EADDRINUSE", err)
	}
}
