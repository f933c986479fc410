package cluster

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"log"
	"log/slog"
	"net"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/graftcm/graft/cluster/internal/logtest"
)

// startGossipNet starts a gossipNet on loopback that knows no members,
// logging to logs.
func startGossipNet(t *testing.T, logs *logtest.Recorder, headerTimeout time.Duration) *gossipNet {
	t.Helper()
	gn, err := newGossipNet(gossipNetConfig{Host: "127.0.0.1", Logger: log.New(io.Discard, "", 0),
		Log: slog.New(logs), HeaderTimeout: headerTimeout})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { gn.Shutdown() })
	return gn
}

// dialGossip connects to gn from the loopback address from.
func dialGossip(t *testing.T, gn *gossipNet, from string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(gn.GetAutoBindPort())))
	if err != nil {
		// Linux routes all of 127.0.0.0/8 to lo, as the mux tests assume
		// too: a dial that fails is a failure.
		t.Fatalf("dial from %s: %v", from, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// encryptedHeader is the start of an encrypted memberlist stream claiming
// n more bytes.
func encryptedHeader(n uint32) []byte {
	return binary.BigEndian.AppendUint32([]byte{mlEncryptMsg}, n)
}

// nextStream returns the next stream gn hands to memberlist.
func nextStream(t *testing.T, gn *gossipNet) net.Conn {
	t.Helper()
	select {
	case c := <-gn.StreamCh():
		t.Cleanup(func() { c.Close() })
		return c
	case <-time.After(10 * time.Second):
		t.Fatal("no stream handed to memberlist")
		return nil
	}
}

// closedByPeer waits for c's peer to close it.
func closedByPeer(t *testing.T, c net.Conn) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, err := c.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read %d bytes, %v: want the server to close the stream", n, err)
	}
}

// memberlist reads the header gossipNet peeked, then the claimed bytes
// and not one more.
func TestGossipStreamReplaysHeaderWithinBudget(t *testing.T) {
	gn := startGossipNet(t, logtest.New(), 0)
	c := dialGossip(t, gn, "127.0.0.1")
	body := bytes.Repeat([]byte("x"), 1000)
	msg := append(encryptedHeader(uint32(len(body))), body...)
	if _, err := c.Write(append(msg, "trailing"...)); err != nil {
		t.Fatal(err)
	}
	s := nextStream(t, gn)
	got, err := io.ReadAll(s)
	if !errors.Is(err, errGossipStreamBudget) {
		t.Errorf("reading past the claim: %v, want errGossipStreamBudget", err)
	}
	if !bytes.Equal(got, msg) {
		t.Errorf("memberlist read %d bytes, want the %d of the message", len(got), len(msg))
	}
}

// A plaintext stream (a keyless test cluster) may carry the budget.
func TestGossipPlaintextStreamCappedAtBudget(t *testing.T) {
	gn := startGossipNet(t, logtest.New(), 0)
	c := dialGossip(t, gn, "127.0.0.1")
	budget := int64(gossipPlainBudget)
	wrote := make(chan struct{})
	go func() { // ends when the server closes, or at c.Close
		defer close(wrote)
		c.Write(bytes.Repeat([]byte{6}, int(budget)+100))
	}()
	s := nextStream(t, gn)
	n, err := io.Copy(io.Discard, s)
	s.Close()
	<-wrote
	if n != budget || !errors.Is(err, errGossipStreamBudget) {
		t.Errorf("read %d bytes, %v; want %d, errGossipStreamBudget", n, err, budget)
	}
}

// A header claiming more than the budget is refused before memberlist
// sees the stream, and logged with both sizes.
func TestGossipStreamOverBudgetRefused(t *testing.T) {
	logs := logtest.New()
	gn := startGossipNet(t, logs, 0)
	budget := int64(gossipStreamMax)
	big := dialGossip(t, gn, "127.0.0.1")
	if _, err := big.Write(encryptedHeader(uint32(budget + 1))); err != nil {
		t.Fatal(err)
	}
	closedByPeer(t, big)
	logs.Wait(t, 5*time.Second, "refusing stream: stream claims more than a stream may", `claimed="`+strconv.Itoa(int(budget)+1)+`"`, "remote=\"127.0.0.1\"")

	ok := dialGossip(t, gn, "127.0.0.1")
	if _, err := ok.Write(encryptedHeader(uint32(budget))); err != nil {
		t.Fatal(err)
	}
	s := nextStream(t, gn)
	hdr := make([]byte, 5)
	if _, err := io.ReadFull(s, hdr); err != nil || !bytes.Equal(hdr, encryptedHeader(uint32(budget))) {
		t.Errorf("memberlist got header %x, %v; want the stream claiming the budget", hdr, err)
	}
}

// The streams open at once claim from one total: a stream that would
// take more than is left is refused, and what a stream claimed is freed
// when it closes. A node that knows few members still takes a large
// cluster's state (the claim does not depend on what it knows).
func TestGossipStreamsShareOneClaimBudget(t *testing.T) {
	logs := logtest.New()
	gn := startGossipNet(t, logs, 0)
	var held []net.Conn
	for range gossipClaimsTotal / gossipStreamMax {
		c := dialGossip(t, gn, "127.0.0.1")
		if _, err := c.Write(encryptedHeader(gossipStreamMax)); err != nil {
			t.Fatal(err)
		}
		s := nextStream(t, gn)
		held = append(held, s)
	}
	over := dialGossip(t, gn, "127.0.0.1")
	if _, err := over.Write(encryptedHeader(1 << 10)); err != nil {
		t.Fatal(err)
	}
	closedByPeer(t, over)
	logs.Wait(t, 5*time.Second, "refusing stream: the streams open claim too much already")
	held[0].Close()
	again := dialGossip(t, gn, "127.0.0.1")
	if _, err := again.Write(encryptedHeader(gossipStreamMax)); err != nil {
		t.Fatal(err)
	}
	nextStream(t, gn).Close()
}

// A stream that does not send its header in time is closed.
func TestGossipStreamHeaderDeadline(t *testing.T) {
	logs := logtest.New()
	gn := startGossipNet(t, logs, 200*time.Millisecond)
	c := dialGossip(t, gn, "127.0.0.1")
	if _, err := c.Write([]byte{mlEncryptMsg, 0}); err != nil {
		t.Fatal(err)
	}
	closedByPeer(t, c)
	logs.Wait(t, 5*time.Second, "refusing stream: no message header within 200ms")
}

// One address may hold maxGossipStreamsPerIP streams, all of them
// maxGossipStreams; further ones are closed at once, and the slot of a
// stream that ends is free again.
func TestGossipStreamsCapped(t *testing.T) {
	logs := logtest.New()
	gn := startGossipNet(t, logs, time.Minute)
	ip := func(i int) string { return "127.0.0." + strconv.Itoa(2+i) }
	var first []net.Conn
	for range maxGossipStreamsPerIP {
		c := dialGossip(t, gn, ip(0))
		first = append(first, c)
	}
	closedByPeer(t, dialGossip(t, gn, ip(0)))
	logs.Wait(t, 5*time.Second, "refusing stream: too many streams from one address", `remote="127.0.0.2"`)

	for i := 1; i < maxGossipStreams/maxGossipStreamsPerIP; i++ {
		for range maxGossipStreamsPerIP {
			dialGossip(t, gn, ip(i))
		}
	}
	extra := ip(maxGossipStreams / maxGossipStreamsPerIP)
	closedByPeer(t, dialGossip(t, gn, extra))
	logs.Wait(t, 5*time.Second, "refusing stream: too many streams", `remote="`+extra+`"`)

	// A stream that hangs up frees its slot once the server sees it.
	first[0].Close()
	waitUntil(t, "a slot freed", func() bool {
		gn.mu.Lock()
		defer gn.mu.Unlock()
		return gn.open < maxGossipStreams
	})
	c := dialGossip(t, gn, extra)
	if _, err := c.Write(encryptedHeader(0)); err != nil {
		t.Fatal(err)
	}
	nextStream(t, gn)
}

// Shutdown closes streams still sending their header, without waiting
// for their deadline, and may be called again.
func TestGossipNetShutdownClosesPendingStreams(t *testing.T) {
	gn := startGossipNet(t, logtest.New(), time.Hour)
	c := dialGossip(t, gn, "127.0.0.1")
	waitUntil(t, "the stream admitted", func() bool {
		gn.mu.Lock()
		defer gn.mu.Unlock()
		return gn.open == 1
	})
	if err := gn.Shutdown(); err != nil {
		t.Fatal(err)
	}
	closedByPeer(t, c)
	if err := gn.Shutdown(); err != nil {
		t.Fatal(err)
	}
}

// waitUntil polls cond for up to ten seconds.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 10s", what)
		}
		<-time.After(10 * time.Millisecond)
	}
}
