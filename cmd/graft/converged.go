package main

import (
	"context"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/graftcm/graft/engine"
	"github.com/graftcm/graft/world"
)

// convergedNS is the host-value namespace in which every host publishes
// whether it is converged: "true" or "false".
const convergedNS = "converged"

// convergedRetry is how long the publisher waits after a failed write
// before it tries again.
const convergedRetry = time.Second

// convergedPublisher keeps this host's converged state in the World, as a
// host value: ephemeral, so it goes when the host is declared dead. It
// writes "false" at once, then each new state; it writes again when the
// World is replaced, and when its value is gone (the host came back after
// being declared dead).
//
// set is called from the engine's scheduler goroutine and never blocks;
// run does the writes.
type convergedPublisher struct {
	worlds *worldRef
	log    *slog.Logger
	kick   chan struct{} // capacity 1: the state changed

	mu        sync.Mutex
	converged bool
}

func newConvergedPublisher(worlds *worldRef, log *slog.Logger) *convergedPublisher {
	return &convergedPublisher{worlds: worlds, log: log, kick: make(chan struct{}, 1)}
}

// set records the converged state for run to publish.
func (p *convergedPublisher) set(converged bool) {
	p.mu.Lock()
	p.converged = converged
	p.mu.Unlock()
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

func (p *convergedPublisher) state() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.converged
}

// run publishes until ctx ends.
func (p *convergedPublisher) run(ctx context.Context) error {
	for ctx.Err() == nil {
		w, replaced := p.worlds.Current()
		if w == nil {
			select {
			case <-ctx.Done():
			case <-replaced:
			}
			continue
		}
		p.follow(ctx, w, replaced)
	}
	return nil
}

// follow publishes on w until replaced closes or ctx ends.
func (p *convergedPublisher) follow(ctx context.Context, w *world.World, replaced <-chan struct{}) {
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	changes, err := w.WatchHostValues(wctx, convergedNS, 0)
	if err != nil {
		p.log.Error("cannot follow the converged states", "err", err)
		return
	}
	retry := time.NewTimer(0)
	defer retry.Stop()
	failing := false // the last write failed: further failures log at debug
	for {
		select {
		case <-ctx.Done():
			return
		case <-replaced:
			return
		case _, ok := <-changes:
			if !ok {
				return
			}
		case <-p.kick:
		case <-retry.C:
		}
		want := strconv.FormatBool(p.state())
		vals, _, err := w.HostValues(wctx, convergedNS)
		if err == nil && string(vals[w.Host()]) == want {
			continue
		}
		if err == nil {
			err = w.SetHostValue(wctx, convergedNS, []byte(want))
		}
		switch {
		case err != nil && wctx.Err() == nil:
			lvl := slog.LevelWarn
			if failing {
				lvl = slog.LevelDebug
			}
			p.log.Log(wctx, lvl, "cannot publish the converged state; trying again", "converged", want, "err", err, "retry", convergedRetry)
			failing = true
			retry.Reset(convergedRetry)
		case err == nil && failing:
			p.log.Info("converged state published", "converged", want)
			failing = false
		}
	}
}

// clusterPoll is how often --cluster-converged looks at the cluster.
const clusterPoll = 200 * time.Millisecond

// clusterConvergence stops the engine (--cluster-converged) once this host
// is converged and so is every live host of the cluster: every member
// whose gossip state is alive or suspect (not yet declared dead, not left)
// has published "true". A live member that has published nothing (it has
// not started its engine yet) is not converged.
type clusterConvergence struct {
	worlds *worldRef
	stop   func()
	log    *slog.Logger
	kick   chan struct{}

	mu   sync.Mutex
	last *engine.Status // this host's newest status
	done *engine.Status // the status it stopped with
}

func newClusterConvergence(worlds *worldRef, stop func(), log *slog.Logger) *clusterConvergence {
	return &clusterConvergence{worlds: worlds, stop: stop, log: log, kick: make(chan struct{}, 1)}
}

// set records this host's status; it does nothing on a nil
// clusterConvergence and never blocks.
func (c *clusterConvergence) set(s engine.Status) {
	if c == nil {
		return
	}
	c.mu.Lock()
	c.last = &s
	c.mu.Unlock()
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// final returns this host's status when the cluster converged, nil if it
// did not.
func (c *clusterConvergence) final() *engine.Status {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.done
}

// run looks at the cluster every clusterPoll until it is converged, then
// stops the engine.
func (c *clusterConvergence) run(ctx context.Context) error {
	tick := time.NewTicker(clusterPoll)
	defer tick.Stop()
	logged := "" // the hosts waited for, as last logged
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-c.kick:
		case <-tick.C:
		}
		c.mu.Lock()
		last := c.last
		c.mu.Unlock()
		if last == nil || !last.Converged {
			continue
		}
		if waiting := c.unconverged(ctx); len(waiting) > 0 {
			if w := strings.Join(waiting, ", "); w != logged {
				c.log.Info("converged; waiting for the cluster's other live hosts to converge", "hosts", w)
				logged = w
			}
			continue
		}
		c.mu.Lock()
		c.done = last
		c.mu.Unlock()
		c.log.Info("every live host of the cluster is converged")
		c.stop()
		return nil
	}
}

// unconverged returns the live hosts that are not converged, sorted; it
// names this one if the World cannot be read. This node's copy of the
// states may be old (it restarted and has not heard from a leader, or it
// is cut off) and say true for a host that has since stopped being
// converged: an answer of none is confirmed by a linearizable read, which
// costs the leader a round only when the wait may end.
func (c *clusterConvergence) unconverged(ctx context.Context) []string {
	w, _ := c.worlds.Current()
	if w == nil {
		return []string{"(no cluster yet)"}
	}
	out := c.unconvergedIn(ctx, w)
	if len(out) == 0 {
		out = c.unconvergedIn(ctx, w, world.Linearizable())
	}
	return out
}

// unconvergedIn is unconverged on w, read with opts.
func (c *clusterConvergence) unconvergedIn(ctx context.Context, w *world.World, opts ...world.ReadOption) []string {
	vals, _, err := w.HostValues(ctx, convergedNS, opts...)
	if err != nil {
		return []string{w.Host()}
	}
	var out []string
	if string(vals[w.Host()]) != "true" {
		out = append(out, w.Host()) // its own state is not published yet
	}
	for _, m := range c.worlds.Members() {
		if m.Name == w.Host() {
			continue
		}
		if (m.Gossip == "alive" || m.Gossip == "suspect") && string(vals[m.Name]) != "true" {
			out = append(out, m.Name)
		}
	}
	sort.Strings(out)
	return out
}
