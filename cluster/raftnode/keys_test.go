package raftnode

import (
	"testing"

	"github.com/graftcm/graft/cluster/clusterkey"
)

func newToken(t *testing.T) clusterkey.Token {
	t.Helper()
	tok, err := clusterkey.Generate()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}
