package gapi

import (
	"context"
	"log/slog"
	"time"

	"github.com/graftcm/graft/fsm"
	"github.com/graftcm/graft/world"
)

// publication is a host's whole export set, for one World.
type publication struct {
	w       *world.World
	exports []fsm.Export
}

// publisher writes each publication to its World, the newest first: a
// write the World refuses is tried again, with a growing delay, until it
// succeeds or a newer publication replaces it.
func (c *Combiner) publisher(ctx context.Context, pubs <-chan publication) {
	var (
		cur   *publication
		delay time.Duration
		retry <-chan time.Time
		none  bool // the last set published was empty
	)
	for {
		select {
		case <-ctx.Done():
			return
		case p := <-pubs:
			cur, delay, retry = &p, 0, nil
		case <-retry:
			retry = nil
		}
		if cur == nil || retry != nil {
			continue
		}
		err := cur.w.Export(ctx, cur.exports)
		if err == nil {
			level := slog.LevelInfo
			if len(cur.exports) == 0 && none {
				level = slog.LevelDebug // a graph that exports nothing, again
			}
			c.log.Log(ctx, level, "exports published", "exports", len(cur.exports))
			none, cur = len(cur.exports) == 0, nil
			continue
		}
		if ctx.Err() != nil {
			return
		}
		delay = min(max(2*delay, 100*time.Millisecond), c.cfg.RetryDelay)
		c.log.Warn("cannot publish exports; trying again", "exports", len(cur.exports), "retry_in", delay, "err", err)
		retry = time.After(delay)
	}
}
