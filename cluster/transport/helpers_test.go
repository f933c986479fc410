package transport

import (
	"crypto/tls"
	"testing"

	"github.com/graftcm/graft/cluster/clusterkey"
)

func newToken(t testing.TB) clusterkey.Token {
	t.Helper()
	tok, err := clusterkey.Generate()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func clusterTLS(t testing.TB, tok clusterkey.Token, nodeID string) (server, client *tls.Config) {
	t.Helper()
	server, client, err := tok.ClusterTLS(nodeID)
	if err != nil {
		t.Fatal(err)
	}
	return server, client
}
