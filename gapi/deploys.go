package gapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/graftcm/graft/world"
)

// deployRetry is how long DeploySource waits before reading the World
// again after a read failed.
const deployRetry = time.Second

// DeploySource follows the World's deploys: it declares the newest
// deploy's graph as soon as it knows it, and again whenever a newer one is
// stored. A deploy that this host cannot turn into a graph (its template
// fails here, say) is logged and skipped: the graph running stays.
type DeploySource struct {
	// Worlds gives the World to follow. Required.
	Worlds Worlds
	// Declare turns a deploy into the graph this host declares. Required.
	Declare func(world.Deploy) (*Declared, error)
	// Fallback, if not nil, is declared while the World has no deploy.
	Fallback *Declared
	// Logger receives deploys swapped in and skipped. Nil discards them.
	Logger *slog.Logger
}

var _ Source = (*DeploySource)(nil)

// Run sends what the World's deploys declare on out until ctx ends, and
// returns nil then. While the receiver is busy, a newer declaration
// replaces the one waiting.
func (s *DeploySource) Run(ctx context.Context, out chan<- *Declared) error {
	if s.Worlds == nil || s.Declare == nil {
		return errors.New("gapi: DeploySource needs Worlds and Declare")
	}
	log := s.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	f := &deployFollower{s: s, log: log, out: out}
	for ctx.Err() == nil {
		w, replaced := s.Worlds.Current()
		if w == nil {
			f.wait(ctx, replaced)
			continue
		}
		f.follow(ctx, w, replaced)
		// A new World (another cluster, maybe) has deploys of its own.
		f.sent = 0
		f.fellBack = false
		f.current = false
	}
	return nil
}

// deployFollower is the state of one Run.
type deployFollower struct {
	s        *DeploySource
	log      *slog.Logger
	out      chan<- *Declared
	pending  *Declared // declared, not taken yet
	sent     uint64    // the deploy last declared (pending or taken)
	fellBack bool      // the fallback was declared since
	// current: the World's local copy has been brought up to date once
	// (a linearizable read): before, it may be an old snapshot.
	current bool
}

// wait offers the pending declaration until until closes or ctx ends.
func (f *deployFollower) wait(ctx context.Context, until <-chan struct{}) {
	for {
		var send chan<- *Declared
		if f.pending != nil {
			send = f.out
		}
		select {
		case <-ctx.Done():
			return
		case <-until:
			return
		case send <- f.pending:
			f.pending = nil
		}
	}
}

// follow follows w's deploys until replaced closes or ctx ends.
func (f *deployFollower) follow(ctx context.Context, w *world.World, replaced <-chan struct{}) {
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	changes := w.Watch(wctx, world.DeployPrefix, 0)
	retry := time.NewTimer(0)
	defer retry.Stop()
	for {
		var send chan<- *Declared
		if f.pending != nil {
			send = f.out
		}
		select {
		case <-ctx.Done():
			return
		case <-replaced:
			return
		case send <- f.pending:
			f.pending = nil
			continue
		case _, ok := <-changes:
			if !ok {
				return
			}
		case <-retry.C:
		}
		if err := f.check(ctx, w); err != nil {
			f.log.Warn("cannot read the deploys; trying again", "err", err, "retry", deployRetry)
			retry.Reset(deployRetry)
		}
	}
}

// check declares the newest deploy if it is newer than the one declared,
// or the fallback if there is none.
//
// The first read on a World waits until its local copy is the cluster's:
// a restarted node's copy is its last snapshot, which may hold an old
// deploy, and running that (and publishing its exports) would take the
// host, and the hosts collecting from it, back in time.
func (f *deployFollower) check(ctx context.Context, w *world.World) error {
	if !f.current {
		if err := w.Linearize(ctx); err != nil {
			return fmt.Errorf("waiting for the cluster's newest deploy: %w", err)
		}
		f.current = true
	}
	d, ok, _, err := w.NewestDeploy(ctx)
	switch {
	case err != nil:
		return err
	case !ok:
		if f.s.Fallback != nil && !f.fellBack {
			f.pending, f.fellBack = f.s.Fallback, true
		}
		return nil
	case d.Number == f.sent:
		return nil
	}
	f.sent = d.Number
	decl, err := f.s.Declare(d)
	if err != nil {
		f.log.Error("deploy skipped: this host cannot run its graph; keeping the running graph",
			"deploy", d.Number, "origin", d.Origin, "err", err)
		return nil
	}
	if decl.Origin == "" {
		decl.Origin = fmt.Sprintf("deploy %d", d.Number)
	}
	f.log.Info("swapping in a deploy", "deploy", d.Number, "origin", d.Origin, "host", d.Host, "graph", decl.Name)
	f.pending, f.fellBack = decl, false
	return nil
}
