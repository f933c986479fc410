package cluster_test

import (
	"fmt"
	"log"

	"github.com/graftcm/graft/cluster"
)

// The first node generates the key; every node derives its cluster-port
// TLS from it.
func ExampleToken_ClusterTLS() {
	tok, err := cluster.GenerateToken()
	if err != nil {
		log.Fatal(err)
	}
	cfg := cluster.DefaultConfig()
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

// Operators compare fingerprints, never keys; a mangled key is refused
// without being echoed.
func ExampleParseToken() {
	tok, err := cluster.ParseToken("graft1_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("fingerprint", tok.Fingerprint())
	_, err = cluster.ParseToken("graft1_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh")
	fmt.Println(err)
	// Output:
	// fingerprint 9dd8e404
	// invalid cluster key: 42 characters after "graft1_", want 43
}
