package world_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/graftcm/graft/fsm"
	"github.com/graftcm/graft/world"
)

// laggingBackend is a node whose copy of the state may be behind the
// cluster: behind holds entries the cluster committed that the local
// state has not applied yet; Linearize applies them, as a linearizable
// read would wait for them.
type laggingBackend struct {
	f *fsm.FSM

	mu     sync.Mutex
	index  uint64
	behind [][]fsm.Command
}

func (b *laggingBackend) apply(t *testing.T, cmds []fsm.Command) []fsm.Result {
	data, err := fsm.EncodeBatch(cmds)
	if err != nil {
		t.Fatal(err)
	}
	b.index++
	res, err := b.f.Apply(b.index, data)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

type laggingWorld struct {
	*laggingBackend
	t *testing.T
}

func (b laggingWorld) Apply(_ context.Context, cmds []fsm.Command) ([]fsm.Result, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.apply(b.t, cmds), nil
}

func (b laggingWorld) Linearize(context.Context) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, cmds := range b.behind {
		b.apply(b.t, cmds)
	}
	b.behind = nil
	return nil
}

func (b laggingWorld) WaitApplied(ctx context.Context, index uint64) error {
	return b.f.WaitApplied(ctx, index)
}
func (b laggingWorld) FSM() *fsm.FSM            { return b.f }
func (b laggingWorld) LeaderContact() time.Time { return time.Now() }

// A host waiting for a slot whose state is behind sees its grant there,
// though the cluster has since taken the slot back (it declared the host
// dead, and may have given the slot to another): Acquire must not hand
// out that slot (it did, with a token smaller than the next holder's, and
// closed Lost at once; the fault suite saw both clients hold it).
func TestAcquireNeverReturnsASlotTheClusterTookBack(t *testing.T) {
	b := laggingWorld{laggingBackend: &laggingBackend{f: fsm.New(fsm.Options{})}, t: t}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	hold := fsm.Command{Op: fsm.OpSemaAcquire, Sema: "s", Count: 1, Node: "n0", Holder: "h0"}
	if _, err := b.Apply(ctx, []fsm.Command{hold}); err != nil {
		t.Fatal(err)
	}
	w, err := world.New(b, "n2", nil)
	if err != nil {
		t.Fatal(err)
	}
	type result struct {
		l   *world.Lease
		err error
	}
	done := make(chan result, 1)
	go func() {
		l, err := w.Acquire(ctx, "s", 1)
		done <- result{l, err}
	}()
	for {
		if st, _ := b.f.Sema("s"); len(st.Waiters) == 1 {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatal("n2 never queued")
		case <-time.After(time.Millisecond):
		}
	}
	b.mu.Lock()
	b.behind = append(b.behind, []fsm.Command{{Op: fsm.OpExpireNode, Node: "n2"}})
	b.mu.Unlock()
	if _, err := b.Apply(ctx, []fsm.Command{{Op: fsm.OpSemaRelease, Sema: "s", Node: "n0", Holder: "h0"}}); err != nil {
		t.Fatal(err)
	}
	r := <-done
	if r.err == nil {
		token := r.l.Token()
		_ = r.l.Release(ctx)
		t.Fatalf("Acquire returned token %d, of a slot the cluster had taken back", token)
	}
	t.Logf("Acquire: %v", r.err)
}

// expiredOnAnswer is a laggingWorld whose cluster, once it has granted
// the slot, declares the acquiring host dead before the host learns more
// than the grant: the answer to the acquire is old news.
type expiredOnAnswer struct {
	laggingWorld
	host string
}

func (b expiredOnAnswer) Apply(ctx context.Context, cmds []fsm.Command) ([]fsm.Result, error) {
	res, err := b.laggingWorld.Apply(ctx, cmds)
	if err == nil && len(cmds) == 1 && cmds[0].Op == fsm.OpSemaAcquire && res[0].Granted {
		b.mu.Lock()
		b.behind = append(b.behind, []fsm.Command{{Op: fsm.OpExpireNode, Node: b.host}})
		b.mu.Unlock()
	}
	return res, err
}

// A host cut off right after its acquire was applied learns of its grant
// only when it is back, after the cluster declared it dead and gave the
// slot to another: Acquire must not hand out that slot on the strength of
// the acquire's answer (it did, and the fault suite saw two holders of a
// one-slot semaphore, the late one with the smaller token).
func TestAcquireNeverReturnsAGrantTheClusterTookBackSinceItsAnswer(t *testing.T) {
	b := expiredOnAnswer{laggingWorld{laggingBackend: &laggingBackend{f: fsm.New(fsm.Options{})}, t: t}, "n2"}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	w, err := world.New(b, "n2", nil)
	if err != nil {
		t.Fatal(err)
	}
	l, err := w.Acquire(ctx, "s", 1)
	if err == nil {
		token := l.Token()
		_ = l.Release(ctx)
		t.Fatalf("Acquire returned token %d, of a slot the cluster had taken back", token)
	}
	if !errors.Is(err, world.ErrSlotTakenBack) {
		t.Fatalf("Acquire: %v, want ErrSlotTakenBack", err)
	}
	if st, _ := b.f.Sema("s"); len(st.Holders) != 0 || len(st.Waiters) != 0 {
		t.Fatalf("semaphore state after the failed acquire: %+v, want no holder and no waiter", st)
	}
}
