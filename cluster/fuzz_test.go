package cluster

import (
	"errors"
	"reflect"
	"runtime"
	"strings"
	"testing"

	"github.com/hashicorp/memberlist"
	"github.com/vmihailenco/msgpack/v5"
)

// FuzzDecodeMeta decodes a peer's gossip metadata as every node does on
// each join, update and merge: whatever a peer gossips, the decoder
// neither panics nor allocates more than a constant times memberlist's
// bound on metadata, says what is wrong with what it refuses, and what
// it accepts encodes (as NodeMeta does) to metadata that decodes the
// same.
func FuzzDecodeMeta(f *testing.F) {
	for _, m := range []Meta{
		{Cluster: "graft", RaftAddr: "10.0.0.1:7947"},
		{Cluster: "prod", ClusterID: "0f8e2c1d-3b4a-4c5d-9e6f-7a8b9c0d1e2f", RaftAddr: "[fe80::1%eth0]:7947",
			Expect: 3, ExpectSet: "9c1185a5c5e9fc54612808977ee8f548b2258d31", Version: "v1.2.3-4-gabcdef", State: true},
		{Cluster: "graft", RaftAddr: "h:1", Leaving: true},
		{Cluster: strings.Repeat("c", 200), RaftAddr: strings.Repeat("r", 200), Expect: -1},
	} {
		b, err := msgpack.Marshal(&m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add([]byte{0x81, 0xa1, 'r', 0xa0})
	f.Add([]byte{0x81, 0xa1, 'x', 0xdd, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, data []byte) {
		var m Meta
		var err error
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		m, err = decodeMeta(data)
		runtime.ReadMemStats(&after)
		if n, bound := after.TotalAlloc-before.TotalAlloc, uint64(64*memberlist.MetaMaxSize+64<<10); n > bound {
			t.Fatalf("decoding %d bytes of metadata allocated %d bytes, over %d", len(data), n, bound)
		}
		if err != nil {
			if !errors.Is(err, errNoMeta) {
				t.Fatalf("refusal %q is not errNoMeta", err)
			}
			if m != (Meta{}) {
				t.Fatalf("refused metadata decoded to %+v", m)
			}
			return
		}
		if m.RaftAddr == "" {
			t.Fatal("accepted metadata without a cluster port address")
		}
		again, err := msgpack.Marshal(&m)
		if err != nil {
			t.Fatalf("encoding decoded metadata: %v", err)
		}
		if len(again) > memberlist.MetaMaxSize {
			return // NodeMeta would gossip none; nothing to compare
		}
		m2, err := decodeMeta(again)
		if err != nil {
			t.Fatalf("re-encoded metadata does not decode: %v", err)
		}
		if !reflect.DeepEqual(m, m2) {
			t.Fatalf("metadata changed on the round trip:\n%+v\n%+v", m, m2)
		}
	})
}
