package main

import (
	"errors"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// blackhole returns a loopback address that takes TCP connections and
// never answers on them: a gossip join through it waits for memberlist's
// TCP timeout (10 s).
func blackhole(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return ln.Addr().String()
}

// Issue 9, item 7 (second review): once the engine had stopped, the agent
// read why a restart of its cluster side had failed under the lock the
// restart holds while the old side stops, which waits for the old join
// loop's gossip join (10 s for each seed that does not answer): a second
// interrupt was not heard until then, and the restart, never told the
// agent stopped, went on to start a new side. Through `graft run`, an
// agent whose cluster side restarts exits at once on a second interrupt.
func TestASecondInterruptStopsAnAgentWhoseClusterSideRestartsAtOnce(t *testing.T) {
	_, gossip, key := firstNode(t, "a")
	b := startNode(t, "b", "--token", newToken(t).Secret(),
		"--join", blackhole(t), "--join", blackhole(t), "--join", blackhole(t))
	joined := make(chan struct{})
	go func() {
		defer close(joined)
		graft(t, "join", "--data-dir", b.data, "--token", key, "--wait", "1s", gossip)
	}()
	defer func() { <-joined }()
	b.waitLog(clusterWait, "restarting the cluster side to join another cluster")

	b.signal(os.Interrupt)
	// The agent says when it waits for the restart, having taken the
	// first interrupt; one that says nothing gets the second anyway.
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(b.output(), "waiting for the restart of its cluster side") && time.Now().Before(deadline) {
		select {
		case <-b.grew:
		case <-b.done:
		case <-time.After(100 * time.Millisecond):
		}
	}
	time.Sleep(repeatWindow) // a signal within it is the first one again
	start := time.Now()
	// Since issue 13 a server that stops ends its joins at once, so the
	// old side may have stopped, and the agent with it, on the first
	// interrupt: then there is no second to send.
	if err := b.cmd.Process.Signal(os.Interrupt); err != nil && !errors.Is(err, os.ErrProcessDone) {
		t.Fatal(err)
	}
	code := b.exitCode(time.Minute)
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("the agent exited %v after the second interrupt, want at once", took.Round(100*time.Millisecond))
	}
	if code != 0 && code != 130 {
		t.Errorf("exit %d after a second interrupt", code)
	}
	// A restart past its last check when the interrupt came starts its
	// side, and the agent then stops it; one told first starts none. The
	// restart logs that it starts the side under the lock the agent's
	// stop takes before saying it waits (moveQueue.commit), so the order
	// of the two lines tells which happened, whatever the machine's load.
	out := b.output()
	if strings.Count(out, "cluster server started") > 1 {
		committed := strings.Index(out, "starting the restarted cluster side")
		stopping := strings.Index(out, "waiting for the restart of its cluster side")
		if committed < 0 || (stopping >= 0 && stopping < committed) {
			t.Errorf("the restart started a new cluster side after the agent began to stop:\n%s", out)
		}
	}
}
