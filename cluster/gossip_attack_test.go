package cluster_test

import (
	"errors"
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/graftcm/graft/cluster"
	"github.com/graftcm/graft/cluster/clusterkey"
)

// attackHeapBound is how much the heap may grow while the gossip port is
// under attack by strangers (README, "Limits on the gossip port"): what
// memberlist may buffer for the streams the port admits at once (about
// 24 MiB), with room to spare.
const attackHeapBound = 64 << 20

// attack opens connections to a gossip port from several addresses, and
// closes them all when the test ends.
type attack struct {
	target   string
	ips      []net.IP
	mu       sync.Mutex
	conns    []net.Conn
	stopping atomic.Bool
}

func newAttack(t *testing.T, target string, ips []net.IP) *attack {
	a := &attack{target: target, ips: ips}
	t.Cleanup(func() {
		a.stopping.Store(true)
		a.mu.Lock()
		defer a.mu.Unlock()
		for _, c := range a.conns {
			c.Close()
		}
	})
	return a
}

// dial opens the ith connection, from the (i mod n)th address.
func (a *attack) dial(i int) (net.Conn, error) {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: a.ips[i%len(a.ips)]}, Timeout: 10 * time.Second}
	c, err := d.Dial("tcp", a.target)
	if err == nil {
		a.mu.Lock()
		a.conns = append(a.conns, c)
		a.mu.Unlock()
	}
	return c, err
}

// ending reports whether the test is closing the connections.
func (a *attack) ending() bool { return a.stopping.Load() }

// oversized opens the ith connection, claims 20 MiB in the header of an
// encrypted message (type 10, then the length) and sends 16 MiB of it. It
// reports whether the server took the 16 MiB.
func (a *attack) oversized(i int, chunk []byte) (taken bool, err error) {
	c, err := a.dial(i)
	if err != nil {
		return false, err
	}
	_ = c.SetWriteDeadline(time.Now().Add(time.Minute))
	_, werr := c.Write([]byte{10, 0x01, 0x40, 0x00, 0x00})
	for sent := 0; werr == nil && sent < 16<<20; sent += len(chunk) {
		_, werr = c.Write(chunk)
	}
	return werr == nil, nil
}

// trickle opens the ith connection, calls opened, and sends the start of
// a header a byte a second until the connection is closed. It reports
// whether the server closed it (rather than the test, ending).
func (a *attack) trickle(i int, opened func()) (closedByServer bool, err error) {
	c, err := a.dial(i)
	opened()
	if err != nil {
		return false, err
	}
	header := []byte{10, 0, 0, 1, 0}
	buf := make([]byte, 64)
	for n := 0; ; n++ {
		if _, err := c.Write(header[n%len(header) : n%len(header)+1]); err != nil {
			break
		}
		_ = c.SetReadDeadline(time.Now().Add(time.Second))
		if _, err := c.Read(buf); !errors.Is(err, os.ErrDeadlineExceeded) {
			break
		}
	}
	return !a.ending(), nil
}

func heapInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

// Issue 8, item 6: before it can authenticate a stream, memberlist reads a
// length from it and buffers that many bytes (up to 20 MiB), for as many
// streams as anyone opens. Thirty streams whose header claims 20 MiB, and
// 400 that trickle a byte a second, must not grow the heap by more than
// attackHeapBound; the first are refused, the trickling ones beyond the
// gossip port's caps closed at once and the rest at its header deadline;
// and a server with the key still joins.
func TestGossipOversizedStreamsDoNotGrowHeap(t *testing.T) {
	tok, err := clusterkey.Generate()
	if err != nil {
		t.Fatal(err)
	}
	a := startKeyedServer(t, "a", tok, nil, nil)
	waitFor(t, 20*time.Second, "a leads", a.Node().IsLeader)
	chunk := make([]byte, 64<<10)
	before := heapInUse()
	atk := newAttack(t, a.GossipAddr(), sourceIPs(t, 10))

	// Thirty streams claim 20 MiB: the server must not take it.
	const big = 30
	var bigWG sync.WaitGroup
	var bigTaken, dialFailed atomic.Int32
	for i := range big {
		bigWG.Go(func() {
			taken, err := atk.oversized(i, chunk)
			if err != nil {
				dialFailed.Add(1)
			} else if taken {
				bigTaken.Add(1)
			}
		})
	}
	// 400 streams send the start of a header, a byte a second.
	const slow = 400
	var slowWG, dialWG sync.WaitGroup
	var closedByServer atomic.Int32
	for i := range slow {
		dialWG.Add(1)
		slowWG.Go(func() {
			closed, err := atk.trickle(big+i, dialWG.Done)
			if err != nil {
				dialFailed.Add(1)
			} else if closed {
				closedByServer.Add(1)
			}
		})
	}
	dialWG.Wait()
	dialed := time.Now()
	bigWG.Wait()
	if n := dialFailed.Load(); n > 0 {
		t.Fatalf("%d attack connections could not be dialled", n)
	}

	checkHeap(t, before)
	if n := bigTaken.Load(); n > 0 {
		t.Errorf("the server read 16 MiB from %d of %d streams claiming 20 MiB", n, big)
	}

	// A keyed server joins while the trickling streams still trickle.
	b := startKeyedServer(t, "b", tok, []string{a.GossipAddr()}, nil)

	// Only the streams the port admits at once (at most 64) may still be
	// open; memberlist alone would hold every one for its TCPTimeout (10s).
	excess := int32(slow - 100)
	for closedByServer.Load() < excess {
		if time.Since(dialed) > 5*time.Second {
			t.Fatalf("%d of %d trickling streams closed 5s after they opened, want at least %d",
				closedByServer.Load(), slow, excess)
		}
		<-time.After(20 * time.Millisecond)
	}
	waitFor(t, 30*time.Second, "every trickling stream closed", func() bool { return closedByServer.Load() == slow })
	slowWG.Wait()

	waitFor(t, 30*time.Second, "b in a's ring and a in b's", func() bool { return seesAlive(a, "b") && seesAlive(b, "a") })
}

// seesAlive reports whether s lists the node name as alive.
func seesAlive(s *cluster.Server, name string) bool {
	for _, m := range s.Members() {
		if m.Name == name && m.Gossip == "alive" {
			return true
		}
	}
	return false
}

// Streams that claim no more than a push-pull may carry are memberlist's
// to read, and it buffers each until it is complete or its TCPTimeout
// (10s) ends: 400 that each send all but the last byte of 180 KiB must
// still leave the heap within attackHeapBound.
func TestGossipStreamsWithinBudgetDoNotGrowHeap(t *testing.T) {
	tok, err := clusterkey.Generate()
	if err != nil {
		t.Fatal(err)
	}
	a := startKeyedServer(t, "a", tok, nil, nil)
	const claim = 180 << 10
	msg := append([]byte{10, 0, claim >> 16, claim >> 8 & 0xff, claim & 0xff}, make([]byte, claim-1)...)
	before := heapInUse()
	atk := newAttack(t, a.GossipAddr(), sourceIPs(t, 10))
	var wg sync.WaitGroup
	var dialFailed atomic.Int32
	for i := range 400 {
		wg.Go(func() {
			c, err := atk.dial(i)
			if err != nil {
				dialFailed.Add(1)
				return
			}
			_ = c.SetWriteDeadline(time.Now().Add(time.Minute))
			c.Write(msg) // fails on the streams the server refuses
		})
	}
	wg.Wait()
	if n := dialFailed.Load(); n > 0 {
		t.Fatalf("%d attack connections could not be dialled", n)
	}
	checkHeap(t, before)
}

// checkHeap fails the test if the heap in use grew by more than
// attackHeapBound since before.
func checkHeap(t *testing.T, before uint64) {
	t.Helper()
	after := heapInUse()
	t.Logf("heap in use %d MiB before the attack, %d MiB during it", before>>20, after>>20)
	if after > before+attackHeapBound {
		t.Errorf("heap grew by %d MiB under attack, want at most %d MiB", (after-before)>>20, attackHeapBound>>20)
	}
}
