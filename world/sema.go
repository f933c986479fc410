package world

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/graftcm/graft/fsm"
)

// releaseTimeout bounds the release a cancelled Acquire sends.
const releaseTimeout = 10 * time.Second

// ErrSlotTakenBack is returned by Acquire when the slot it was granted had
// been taken back by the time it could confirm it: the cluster declared
// this host dead meanwhile, and may have given the slot to another.
var ErrSlotTakenBack = errors.New("the slot granted was taken back (this host was expired?)")

// Lease is a slot of a cluster-wide semaphore.
type Lease struct {
	w      *World
	id     string
	holder string
	token  uint64

	lost     chan struct{}
	lostOnce sync.Once
	stop     context.CancelFunc
	done     chan struct{}
}

// Token is the slot's fencing token: the raft index at which it was
// granted, increasing for the semaphore. Pass it to whatever the slot
// guards so it can refuse a holder whose slot has since gone.
func (l *Lease) Token() uint64 { return l.token }

// Lost is closed if the slot may be gone without Release: the cluster
// released it (it declared this host dead), or this host has not heard from
// a leader for the World's lease timeout (WithLeaseTimeout) and so cannot know that the cluster
// has not. Stop using what the slot guards when it closes.
func (l *Lease) Lost() <-chan struct{} { return l.lost }

// Release gives the slot back. It is idempotent.
func (l *Lease) Release(ctx context.Context) error {
	l.stop()
	<-l.done
	_, err := l.w.apply(ctx, fsm.Command{Op: fsm.OpSemaRelease, Sema: l.id, Node: l.w.host, Holder: l.holder})
	l.w.holders.drop(l.holder, err != nil)
	return err
}

// Acquire takes a slot of the cluster-wide semaphore id, which has count
// slots, waiting in FIFO order for one to be free. Every acquirer of id must
// give the same count. If ctx ends first, the place in the queue is given up.
func (w *World) Acquire(ctx context.Context, id string, count int64) (*Lease, error) {
	if id == "" || len(id) > fsm.MaxNameSize {
		return nil, fmt.Errorf("world: semaphore id %q: want 1 to %d bytes", id, fsm.MaxNameSize)
	}
	if count < 1 || count > fsm.MaxSemaCount {
		return nil, fmt.Errorf("world: semaphore %q: count %d is not between 1 and %d", id, count, fsm.MaxSemaCount)
	}
	holder := fmt.Sprintf("%s/%s/%d", w.host, w.nonce, w.seq.Add(1))
	// giveUp withdraws the request: after a failed or cancelled acquire the
	// request may still have been applied (the outcome of a write cut short
	// is unknown), and a queue place nobody waits on would be granted to
	// nobody.
	// A withdrawal that fails leaves the holder to ReleaseStale.
	giveUp := func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), releaseTimeout)
		defer cancel()
		_, err := w.apply(rctx, fsm.Command{Op: fsm.OpSemaRelease, Sema: id, Node: w.host, Holder: holder})
		if err != nil {
			w.log.Warn("could not withdraw from a semaphore; withdrawing once the cluster can be reached",
				"sema", id, "err", err)
		}
		w.holders.drop(holder, err != nil)
	}
	w.holders.track(holder)
	res, err := w.apply(ctx, fsm.Command{Op: fsm.OpSemaAcquire, Sema: id, Count: count, Node: w.host, Holder: holder})
	if err != nil {
		if !errors.Is(err, ErrRefused) { // not refused outright: it may have been applied
			giveUp()
		} else {
			w.holders.drop(holder, false)
		}
		return nil, fmt.Errorf("world: acquire %q: %w", id, err)
	}
	token := res.Token
	if res.Granted {
		// The answer may come late (this host cut off before it applied
		// the grant): the cluster may have taken the slot back since.
		err = w.confirmGrant(ctx, id, holder, token)
	} else {
		token, err = w.waitGrant(ctx, id, holder)
	}
	if err != nil {
		giveUp()
		return nil, err
	}
	wctx, stop := context.WithCancel(context.Background())
	l := &Lease{w: w, id: id, holder: holder, token: token, lost: make(chan struct{}), stop: stop, done: make(chan struct{})}
	go l.guard(wctx)
	return l, nil
}

// semaState reads a semaphore's state from the local copy.
func (w *World) semaState(id string) (fsm.SemaState, bool) {
	kv, ok := w.f.Get(fsm.SemaPrefix + id)
	if !ok {
		return fsm.SemaState{}, false
	}
	return decodeSema(kv)
}

func decodeSema(kv fsm.KV) (fsm.SemaState, bool) {
	var st fsm.SemaState
	if err := msgpack.Unmarshal(kv.Value, &st); err != nil {
		return fsm.SemaState{}, false
	}
	return st, true
}

func findSlot(slots []fsm.Slot, holder string) (fsm.Slot, bool) {
	i := slices.IndexFunc(slots, func(s fsm.Slot) bool { return s.Holder == holder })
	if i < 0 {
		return fsm.Slot{}, false
	}
	return slots[i], true
}

// waitGrant waits until holder holds a slot of id and returns its token.
// A grant seen in this host's copy of the state is confirmed against the
// cluster's before it is handed out: the copy may be behind, and the
// cluster may have taken the slot back since (it declared this host dead
// while it was cut off), even given it to another.
func (w *World) waitGrant(ctx context.Context, id, holder string) (uint64, error) {
	for {
		changed := w.f.Changed()
		st, _ := w.semaState(id)
		if s, ok := findSlot(st.Holders, holder); ok {
			if err := w.confirmGrant(ctx, id, holder, s.Token); err != nil {
				return 0, err
			}
			return s.Token, nil
		}
		if _, waiting := findSlot(st.Waiters, holder); !waiting {
			return 0, fmt.Errorf("world: semaphore %q: no longer queued (this host was expired?)", id)
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-changed:
		}
	}
}

// confirmGrant checks against the cluster's state that holder still holds
// the slot of id granted with token: a grant seen in this host's copy of
// the state, or in a write's answer, may be old news.
func (w *World) confirmGrant(ctx context.Context, id, holder string, token uint64) error {
	if err := w.b.Linearize(ctx); err != nil {
		return fmt.Errorf("world: semaphore %q: confirming the slot granted: %w", id, err)
	}
	st, _ := w.semaState(id)
	if now, ok := findSlot(st.Holders, holder); !ok || now.Token != token {
		return fmt.Errorf("world: semaphore %q: %w", id, ErrSlotTakenBack)
	}
	return nil
}

// guard closes Lost if the slot disappears while the lease is held, or if
// this host stops hearing from a leader for the lease timeout.
func (l *Lease) guard(ctx context.Context) {
	defer close(l.done)
	timeout := l.w.leaseTimeout
	tick := time.NewTicker(max(timeout/4, time.Millisecond))
	defer tick.Stop()
	lose := func(why string) {
		l.w.log.Warn("semaphore slot lost", "sema", l.id, "token", l.token, "why", why)
		l.lostOnce.Do(func() { close(l.lost) })
	}
	var seen uint64 // ModRev of the semaphore's key when last found held
	for {
		changed := l.w.f.Changed()
		if kv, ok := l.w.f.Get(fsm.SemaPrefix + l.id); !ok || kv.ModRev != seen {
			st, _ := decodeSema(kv)
			if _, held := findSlot(st.Holders, l.holder); !ok || !held {
				lose("released by the cluster")
				return
			}
			seen = kv.ModRev
		}
		if since := time.Since(l.w.b.LeaderContact()); since > timeout {
			lose(fmt.Sprintf("no word from a leader for %v", since.Round(time.Millisecond)))
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-changed:
		case <-tick.C:
		}
	}
}

// AcquireSlot is Acquire in the shape the engine asks for (it satisfies
// engine.ClusterSemaphores without the engine importing this package): the
// slot's fencing token, its Lost channel and its Release.
func (w *World) AcquireSlot(ctx context.Context, id string, count int64) (uint64, <-chan struct{}, func(context.Context) error, error) {
	l, err := w.Acquire(ctx, id, count)
	if err != nil {
		return 0, nil, nil, err
	}
	return l.Token(), l.Lost(), l.Release, nil
}
