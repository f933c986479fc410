package cluster_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/graftcm/graft/cluster/clustertest"
	"github.com/graftcm/graft/cluster/raftnode"
	"github.com/graftcm/graft/fsm"
)

// Issue 13 (review): a write through the minority side of a partition was
// refused with "no leader" and nothing about the quorum. It says how many
// voters the node reaches out of how many, and that a leader needs a
// majority (those that answer on the cluster port: its gossip ring still
// lists them alive for a while); it is still ErrNoLeader.
func TestAWriteThroughACutOffVoterSaysItReachesNoMajority(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f, _ := grow3(t, nil)
		leader := fleetLeader(t, f)
		var cut *clustertest.Slot
		for _, s := range f.Slots {
			if s != leader {
				cut = s
			}
		}
		f.Partition(cut)
		srv := cut.Server()
		eventually(t, time.Minute, "the cut-off voter without a leader", func() bool {
			_, addr := srv.Node().Leader()
			return addr == ""
		})
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		defer cancel()
		_, err := srv.Node().Apply(ctx, []fsm.Command{{Op: fsm.OpPut, Key: "k", Value: []byte("v")}})
		if !errors.Is(err, raftnode.ErrNoLeader) {
			t.Fatalf("a write through the cut-off voter: %v, want ErrNoLeader", err)
		}
		t.Logf("the cut-off voter refuses a write: %v", err)
		want := "this node reaches 1 of the 3 voters (itself included); a leader needs a majority, 2, so this side"
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the refusal does not say the quorum:\n%v\nwant it to say %q", err, want)
		}
	})
}
