package raftnode_test

import (
	"fmt"
	"log"

	"github.com/graftcm/graft/cluster/clusterkey"
	"github.com/graftcm/graft/cluster/raftnode"
)

// The first node generates the key; every node derives its cluster-port
// TLS from it.
func ExampleConfig_clusterKey() {
	tok, err := clusterkey.Generate()
	if err != nil {
		log.Fatal(err)
	}
	cfg := raftnode.DefaultConfig()
	cfg.NodeID = "web1"
	cfg.ServerTLS, cfg.ClientTLS, err = tok.ClusterTLS(cfg.NodeID)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(cfg.Validate())
	fmt.Println(len(tok.GossipKey()), "byte gossip key")
	// Output:
	// <nil>
	// 32 byte gossip key
}
