package cluster_test

import (
	"bytes"
	"crypto/rand"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/graftcm/graft/cluster/clusterkey"
	"github.com/graftcm/graft/cluster/internal/logtest"
)

// recordingProxy forwards TCP connections to target and keeps what the
// first client sent.
type recordingProxy struct {
	ln   net.Listener
	mu   sync.Mutex
	sent bytes.Buffer
	once sync.Once
	wg   sync.WaitGroup
}

func startRecordingProxy(t *testing.T, target string) *recordingProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &recordingProxy{ln: ln}
	p.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			first := false
			p.once.Do(func() { first = true })
			p.wg.Go(func() {
				defer up.Close()
				var w io.Writer = up
				if first {
					w = io.MultiWriter(up, &lockedWriter{mu: &p.mu, b: &p.sent})
				}
				_, _ = io.Copy(w, c)
			})
			p.wg.Go(func() {
				defer c.Close()
				_, _ = io.Copy(c, up)
			})
		}
	})
	t.Cleanup(func() { ln.Close(); p.wg.Wait() })
	return p
}

func (p *recordingProxy) recorded() []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	return bytes.Clone(p.sent.Bytes())
}

type lockedWriter struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

// Streams that are not gossip, or not the cluster's (random bytes, an
// encrypted header then noise, a stream cut short) and a member's join
// replayed byte for byte, 400 of them from two addresses, leave the ring
// as it was, the heap within bounds, and a few lines in the log: one per
// kind of failure and address every 10 s, not one per stream.
func TestGossipGarbageAndReplayedStreamsChangeNothing(t *testing.T) {
	tok, err := clusterkey.Generate()
	if err != nil {
		t.Fatal(err)
	}
	tap := logtest.New()
	a := startKeyedServer(t, "a", tok, nil, slog.New(tap))
	waitFor(t, 20*time.Second, "a leads", a.Node().IsLeader)
	proxy := startRecordingProxy(t, a.GossipAddr())
	b := startKeyedServer(t, "b", tok, []string{proxy.ln.Addr().String()}, nil)
	waitFor(t, 30*time.Second, "b in a's ring and a in b's", func() bool { return seesAlive(a, "b") && seesAlive(b, "a") })
	join := proxy.recorded()
	if len(join) == 0 {
		t.Fatal("b's join was not recorded")
	}

	noise := make([]byte, 2048)
	rand.Read(noise)
	streams := map[string][]byte{
		"random":         append([]byte{0x7f}, noise[:500]...),
		"encrypted junk": append([]byte{10, 0, 0, 8, 0}, noise...),
		"cut short":      append([]byte{10, 0, 0, 8, 0}, noise[:100]...),
		"replayed join":  join,
	}
	ips := sourceIPs(t, 2)
	before := heapInUse()
	start := time.Now()
	atk := newAttack(t, a.GossipAddr(), ips)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8) // within the port's per-address cap
	for i := range 400 {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			c, err := atk.dial(i)
			if err != nil {
				t.Error(err)
				return
			}
			defer c.Close()
			kinds := []string{"random", "encrypted junk", "cut short", "replayed join"}
			_ = c.SetDeadline(time.Now().Add(30 * time.Second))
			_, _ = c.Write(streams[kinds[i%len(kinds)]])
			if tc, ok := c.(*net.TCPConn); ok {
				_ = tc.CloseWrite()
			}
			_, _ = io.Copy(io.Discard, c) // until the server closes it
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	checkHeap(t, before)

	fromAttack := func(l logtest.Line) bool {
		for _, ip := range ips {
			if strings.Contains(l.Attrs["remote"], ip.String()) || strings.Contains(l.Text, "from="+ip.String()+":") {
				return true
			}
		}
		return false
	}
	lines := tap.Matching(fromAttack)
	kinds := map[string]bool{}
	for _, l := range lines {
		kinds[l.Msg] = true
	}
	windows := 1 + int(elapsed/(10*time.Second))
	t.Logf("%d lines of %d kinds for 400 streams in %v", len(lines), len(kinds), elapsed.Round(time.Millisecond))
	for i, l := range lines[:min(len(lines), 8)] {
		t.Logf("line %d: %v %s", i, l.Level, l.Text)
	}
	if most := len(kinds) * len(ips) * windows; len(lines) > most || len(kinds) > 4 {
		t.Errorf("%d log lines of %d kinds for 400 streams from %d addresses, want at most one per kind, address and 10 s (%d), of at most 4 kinds",
			len(lines), len(kinds), len(ips), most)
	}
	if ms := a.Members(); len(ms) != 2 || !seesAlive(a, "b") || !seesAlive(b, "a") {
		t.Errorf("a's ring after the streams: %+v, want a and b alive", ms)
	}
}
