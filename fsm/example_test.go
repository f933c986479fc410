package fsm_test

import (
	"fmt"

	"github.com/graftcm/graft/fsm"
)

// A writer encodes a batch, raft commits it, every replica applies it;
// watchers read the events after the revision they have seen.
func ExampleFSM_Events() {
	f := fsm.New(fsm.Options{})
	entry, err := fsm.EncodeBatch([]fsm.Command{
		{Op: fsm.OpPut, Key: "app/a", Value: []byte("1")},
		{Op: fsm.OpPut, Key: "app/b", Value: []byte("2"), Ephemeral: true, Node: "web1"},
		{Op: fsm.OpSemaAcquire, Sema: "deploy", Count: 1, Node: "web1", Holder: "exec[migrate]"},
	})
	if err != nil {
		panic(err)
	}
	results, err := f.Apply(7, entry) // the raft index of the entry
	if err != nil {
		panic(err)
	}
	fmt.Println("granted:", results[2].Granted, "token:", results[2].Token)

	evs, through, err := f.Events(0, "app/", 100)
	if err != nil {
		panic(err)
	}
	for _, e := range evs {
		fmt.Printf("%s=%s rev %d owner %q\n", e.KV.Key, e.KV.Value, e.KV.ModRev, e.KV.Owner)
	}
	fmt.Println("seen through", through)
	// Output:
	// granted: true token: 7
	// app/a=1 rev 7 owner ""
	// app/b=2 rev 7 owner "web1"
	// seen through 7
}
