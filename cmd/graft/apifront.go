package main

import (
	"context"
	"log/slog"
	"net"
	"sync"

	apiserver "github.com/graftcm/graft/api/server"
)

// apiFront keeps the local API's listeners, and the one HTTP server on
// them (apiserver.Front), open for the agent's whole run, and hands each
// request to the API server of the cluster side that runs. While a side
// restarts (a join, a move to another cluster), a client's connection
// waits in the listener's backlog, and a request read meanwhile waits for
// the next side's server: `graft join` run twice at once, or `graft
// status` during a join, used to fail with "no graft agent answers", and
// a request the old side's server read as it shut down ended with EOF.
type apiFront struct {
	mu    sync.Mutex
	lns   []net.Listener
	front *apiserver.Front
	stop  func() // stops serving; set while open
}

// serve makes srv the server that takes the API's requests, opening the
// listeners (see openAPI) and serving them the first time; it returns
// the listeners. log receives the HTTP server's errors.
func (f *apiFront) serve(dir, tcpAddr string, srv *apiserver.Server, log *slog.Logger) ([]net.Listener, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.lns == nil {
		lns, err := openAPI(dir, tcpAddr)
		if err != nil {
			return nil, err
		}
		front := apiserver.NewFront(apiserver.DefaultTimeout, log)
		f.lns, f.front = lns, front
		f.stop = goRun(func(ctx context.Context) error { return front.Serve(ctx, lns...) },
			func(err error) { log.Error("local API stopped", "err", err) })
	}
	f.front.Set(srv)
	return f.lns, nil
}

// stopServing stops srv, a side's server, taking requests: those it
// holds (watches, held semaphore slots) end, those in progress are
// waited for, and new ones wait for the next side's server.
func (f *apiFront) stopServing(srv *apiserver.Server) {
	f.mu.Lock()
	if f.front != nil {
		f.front.Set(nil)
	}
	f.mu.Unlock()
	srv.Stop()
}

// close closes the listeners (removing the socket) and stops the HTTP
// server; it waits for it. Nothing if none are open.
func (f *apiFront) close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.lns == nil {
		return
	}
	f.stop()
	f.lns, f.front, f.stop = nil, nil, nil
}
