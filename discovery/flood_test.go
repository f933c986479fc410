package discovery

import (
	"crypto/rand"
	"runtime"
	"testing"
	"time"
)

// A flood on the beacon's socket of every kind of bad packet at once,
// 12,000 of them (forged, replayed, cut short, random, another cluster's,
// and datagrams of 60 kB), leaves the peers as they were, a few log
// lines (one per kind per minute), the heap as it was, and the beacon
// still hearing a new peer at once.
func TestFloodOfBadPacketsOnTheSocketChangesNothing(t *testing.T) {
	rec := &recorder{}
	h := &hub{}
	cfg := testConfig(t, h, "self")
	cfg.Interval, cfg.Logger = time.Hour, rec.logger()
	b := start(t, cfg)
	waitFor(t, "the start query to come back", func() bool { return b.Stats().Received == 1 })
	hc := cfg.Conn.(*hubConn)
	key := testKey(t, "k1")
	good := encodeWith(t, announcement("p", 10, 5), key)
	sendAndAwait(t, b, hc, good)

	forged := encodeWith(t, announcement("f", 10, 1), testKey(t, "k2"))
	other := announcement("o", 10, 1)
	other.cluster = "staging"
	random := make([]byte, 300)
	rand.Read(random)
	moved := announcement("p", 10, 4) // p's older packet, another address
	moved.addr = "attacker:7946"
	bad := [][]byte{forged, encodeWith(t, other, key), good, encodeWith(t, moved, key), good[:len(good)-1], random,
		make([]byte, 60000)}

	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	start := time.Now()
	s := newRawSender(t)
	for i := range 12000 {
		s.to(t, hc, bad[i%len(bad)])
	}
	// The socket is read in order: once a packet sent now is recorded,
	// what came before was handled, or dropped by the kernel.
	for seq := uint64(1); ; seq++ {
		s.to(t, hc, encodeWith(t, announcement("late", 20, seq), key))
		if _, ok := peerNamed(b.Beacon, "late"); ok {
			break
		}
		if time.Since(start) > time.Minute {
			t.Fatal("a new peer was not heard a minute after the flood")
		}
		<-time.After(10 * time.Millisecond)
	}
	elapsed := time.Since(start)
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)

	if p, _ := peerNamed(b.Beacon, "p"); p.Addr != "p:7946" || len(b.Peers()) != 2 {
		t.Errorf("peers %+v after the flood, want p at p:7946 and late", b.Peers())
	}
	st := b.Stats()
	t.Logf("after %v: %+v", elapsed.Round(time.Millisecond), st)
	for _, r := range []reason{reasonOversized, reasonMalformed, reasonOtherCluster, reasonUnauthentic, reasonReplayed} {
		if st.Ignored[r.String()] == 0 {
			t.Errorf("no %s packet counted", r)
		}
	}
	if n, most := rec.count("ignored a discovery packet"), 5*(1+int(elapsed/time.Minute)); n > most {
		t.Errorf("%d log lines for the flood, want at most %d (one per kind per minute)", n, most)
	}
	if grew := int64(after.HeapInuse) - int64(before.HeapInuse); grew > 8<<20 {
		t.Errorf("the heap grew by %d MiB under the flood", grew>>20)
	}
}
