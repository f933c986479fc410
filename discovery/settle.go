package discovery

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// Settle waits out the settle window, then until Decide says what this
// node does: Bootstrap (the beacon then announces this node as
// bootstrapped at once, before its caller bootstraps), Join, or Member
// for a node that belongs to a cluster. A beacon with no key returns a
// zero Decision after the window: see Sightings. Run must be running.
func (b *Beacon) Settle(ctx context.Context) (Decision, error) {
	if err := sleepUntil(ctx, b.settleAt); err != nil {
		return Decision{}, err
	}
	if b.cfg.Key == nil {
		return Decision{}, nil
	}
	b.mu.Lock()
	b.settled = true
	b.changeLocked() // announces the settled candidate at once
	b.mu.Unlock()
	var lastLog time.Time
	for {
		b.mu.Lock()
		d := b.actLocked()
		changed := b.changed
		b.mu.Unlock()
		if d.Step != Wait {
			b.log.Info("discovery decided", "step", d.Step.String(), "join", d.Join, "cluster_id", d.Cluster,
				"waited", time.Since(b.started).Round(time.Millisecond))
			return d, nil
		}
		switch {
		case time.Since(lastLog) < 5*b.cfg.Interval:
		case d.SawCluster:
			b.log.Warn("discovery: this node heard a node of its cluster's key in a cluster, gone quiet since; it starts "+
				"no other cluster, and waits to hear that one again", "node", b.cfg.NodeName)
			lastLog = time.Now()
		case d.NameClash:
			b.log.Error("discovery: another node announces this node's name; two fresh nodes of one name would "+
				"each start a cluster, so this one starts none: give each node its own name", "node", b.cfg.NodeName)
			lastLog = time.Now()
		default:
			b.log.Info("discovery: this node would bootstrap the cluster, and waits for the fresh nodes it hears to agree",
				"waiting_for", d.Waiting)
			lastLog = time.Now()
		}
		t := time.NewTimer(b.cfg.Interval)
		select {
		case <-ctx.Done():
			t.Stop()
			return Decision{}, ctx.Err()
		case <-changed:
		case <-t.C:
		}
		t.Stop()
	}
}

// Act returns Decide's decision on the current view, as Decision does,
// and commits to a Bootstrap as Settle does: the beacon announces this
// node bootstrapped at once, so it names no other node since, and its
// caller must bootstrap. A fresh node whose Settle returned Join calls it
// while it waits to be added to a cluster: the node it named may be gone
// before it bootstrapped, and one of those that named it then
// bootstraps instead, by the same rule.
func (b *Beacon) Act() Decision {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.actLocked()
}

// actLocked decides, and commits to a Bootstrap. A candidate that moved
// unnoticed (a peer that went quiet while the send loop did not look:
// see expire) is announced. Under mu.
func (b *Beacon) actLocked() Decision {
	d := b.decideLocked()
	if d.Candidate != b.candidate {
		b.candidate, b.announce = d.Candidate, true
		b.wake()
	}
	if d.Step == Bootstrap {
		b.bootstrapped = true
		b.changeLocked()
	}
	return d
}

// sleepUntil waits until at, or ctx ends.
func sleepUntil(ctx context.Context, at time.Time) error {
	t := time.NewTimer(time.Until(at))
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// logLimiter logs a line of one kind at most once per every, saying how
// many were suppressed since the last.
type logLimiter struct {
	every time.Duration
	mu    sync.Mutex
	last  map[string]time.Time
	count map[string]int
}

// allow reports whether a line of kind may be logged now, and how many
// were suppressed since the last one. It allocates nothing once kind has
// been seen.
func (l *logLimiter) allow(kind string) (suppressed int, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.last == nil {
		l.last, l.count = map[string]time.Time{}, map[string]int{}
	}
	now := time.Now()
	if last, seen := l.last[kind]; seen && now.Sub(last) < l.every {
		l.count[kind]++
		return 0, false
	}
	suppressed = l.count[kind]
	l.last[kind], l.count[kind] = now, 0
	return suppressed, true
}

// log logs a line of kind unless one was logged within every.
func (l *logLimiter) log(log *slog.Logger, kind string, level slog.Level, msg string, attrs ...any) {
	suppressed, ok := l.allow(kind)
	if !ok {
		return
	}
	if suppressed > 0 {
		attrs = append(attrs, "suppressed", suppressed)
	}
	log.Log(context.Background(), level, msg, attrs...)
}
