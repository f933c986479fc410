package main

import (
	"context"
	"errors"
	"net"
	"sync"
	"time"
)

// apiFront keeps the local API's listeners open for the agent's whole run
// and hands each connection to the API server of the cluster side that
// runs. While a side restarts (a join, a move to another cluster), a
// client's connection waits in the listener's backlog for the next side's
// server instead of finding no socket: `graft join` run twice at once,
// or `graft status` during a join, used to fail with "no graft agent
// answers".
type apiFront struct {
	mu       sync.Mutex
	lns      []net.Listener
	handoffs []chan net.Conn // one per listener, read by the side's server
	stop     context.CancelFunc
	wg       sync.WaitGroup
}

// lend returns listeners for one side's API server, opening the real ones
// (see openAPI) the first time. Closing a lent listener ends that server's
// use of it and leaves the real one open.
func (f *apiFront) lend(dir, tcpAddr string) ([]net.Listener, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.lns == nil {
		lns, err := openAPI(dir, tcpAddr)
		if err != nil {
			return nil, err
		}
		ctx, cancel := context.WithCancel(context.Background())
		f.lns, f.stop = lns, cancel
		for _, ln := range lns {
			ch := make(chan net.Conn)
			f.handoffs = append(f.handoffs, ch)
			f.wg.Go(func() { acceptInto(ctx, ln, ch) })
		}
	}
	lent := make([]net.Listener, len(f.lns))
	for i, ln := range f.lns {
		lent[i] = &lentListener{addr: ln.Addr(), conns: f.handoffs[i], done: make(chan struct{})}
	}
	return lent, nil
}

// close closes the real listeners (removing the socket) and stops handing
// connections on; it waits for its goroutines. Nothing if none are open.
func (f *apiFront) close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.lns == nil {
		return
	}
	f.stop()
	for _, ln := range f.lns {
		ln.Close()
	}
	f.wg.Wait()
	f.lns, f.handoffs = nil, nil
}

// acceptInto accepts connections on ln and hands each to whichever server
// reads ch, until ln closes or ctx ends. A connection nobody takes by then
// is closed.
func acceptInto(ctx context.Context, ln net.Listener, ch chan<- net.Conn) {
	for {
		c, err := ln.Accept()
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil { // out of descriptors and the like: back off as net/http does
			select {
			case <-ctx.Done():
				return
			case <-time.After(50 * time.Millisecond):
			}
			continue
		}
		select {
		case ch <- c:
		case <-ctx.Done():
			c.Close()
			return
		}
	}
}

// lentListener is a side's share of one of the front's listeners.
type lentListener struct {
	addr  net.Addr
	conns <-chan net.Conn
	done  chan struct{}
	once  sync.Once
}

func (l *lentListener) Accept() (net.Conn, error) {
	select {
	case <-l.done: // closed: leave what waits to the next side
		return nil, net.ErrClosed
	default:
	}
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *lentListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *lentListener) Addr() net.Addr { return l.addr }
