package world

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/graftcm/graft/fsm"
)

// DeployPrefix is where deploys are kept: DeployPrefix + the deploy's
// number, zero-padded to 20 digits so that keys sort by number.
const DeployPrefix = fsm.InternalPrefix + "deploy/"

// MaxDeploySize bounds a deploy's graph: a deploy is one value, at most
// fsm.MaxValueSize bytes, and the rest of the record (its origin, note,
// host and time) gets the remaining 64 KiB.
const MaxDeploySize = fsm.MaxValueSize - 64<<10

// MaxDeploys is how many deploys the cluster keeps: storing one more
// deletes the oldest. Every deploy lives in every node's memory and
// snapshots, so the history cannot grow for ever; a hundred deploys
// leave room for any rollback a person makes.
const MaxDeploys = 100

// maxOrigin bounds a deploy's origin (a file name).
const maxOrigin = 1 << 10

// deployAttempts bounds how often Deploy retries after another deployer
// took the number it tried.
const deployAttempts = 100

// ErrNoDeploy means the deploy asked for does not exist.
var ErrNoDeploy = errors.New("no such deploy")

// ErrNewestAlready means a rollback named the newest deploy: it would
// change nothing.
var ErrNewestAlready = errors.New("is the newest already: nothing to roll back")

// ErrDeployTooLarge means a graph is larger than MaxDeploySize.
var ErrDeployTooLarge = fmt.Errorf("deploy larger than %d bytes", MaxDeploySize)

// Deploy is a graph stored in the World for every host that follows
// deploys to run. Deploys are numbered from 1 in the order they were made
// and never change: a rollback is a new deploy with an older one's graph.
// The newest MaxDeploys are kept.
type Deploy struct {
	Number uint64 `msgpack:"-"`
	// Time is when it was made, by the clock of the host that made it.
	Time time.Time `msgpack:"t"`
	// Host is the host whose agent stored it.
	Host string `msgpack:"h"`
	// Origin is the graph file's name as the deployer gave it.
	Origin string `msgpack:"o"`
	// RollbackOf is the deploy whose graph a rollback copied, else 0.
	RollbackOf uint64 `msgpack:"r,omitempty"`
	// Graph is the graph file's contents.
	Graph []byte `msgpack:"g"`
}

// Note describes what a deploy was, for listings: "rollback to N" or
// empty.
func (d Deploy) Note() string {
	if d.RollbackOf == 0 {
		return ""
	}
	return fmt.Sprintf("rollback to %d", d.RollbackOf)
}

// DeployKey returns the key of deploy n.
func DeployKey(n uint64) string { return fmt.Sprintf("%s%020d", DeployPrefix, n) }

// DecodeDeploy decodes the deploy stored under key, as a watch of
// DeployPrefix delivers it.
func DecodeDeploy(kv fsm.KV) (Deploy, error) {
	n, err := strconv.ParseUint(strings.TrimPrefix(kv.Key, DeployPrefix), 10, 64)
	if err != nil || !strings.HasPrefix(kv.Key, DeployPrefix) || n == 0 {
		return Deploy{}, fmt.Errorf("world: %q is not a deploy's key", kv.Key)
	}
	var d Deploy
	if err := msgpack.Unmarshal(kv.Value, &d); err != nil {
		return Deploy{}, fmt.Errorf("world: deploy %d: %w", n, err)
	}
	d.Number = n
	return d, nil
}

// Deploy stores graph as the newest deploy, made by this host from the
// file named origin, and returns its number. Deployers anywhere in the
// cluster may deploy at once: each deploy gets a number of its own.
func (w *World) Deploy(ctx context.Context, origin string, graph []byte) (uint64, error) {
	return w.deploy(ctx, Deploy{Origin: origin, Graph: graph})
}

// Rollback stores deploy n's graph again, as the newest deploy, and
// returns its number. Every host then runs that graph; the deploys made
// since n stay in the history. Rolling back to the newest deploy is an
// error: nothing would change.
func (w *World) Rollback(ctx context.Context, n uint64) (uint64, error) {
	old, ok, err := w.GetDeploy(ctx, n, Linearizable())
	if err != nil {
		return 0, err
	}
	newest, _, _, err := w.NewestDeploy(ctx)
	switch {
	case err != nil:
		return 0, err
	case !ok && n < newest.Number:
		return 0, fmt.Errorf("world: deploy %d: %w: only the newest %d are kept", n, ErrNoDeploy, MaxDeploys)
	case !ok:
		return 0, fmt.Errorf("world: deploy %d: %w", n, ErrNoDeploy)
	}
	if newest.Number == n {
		return 0, fmt.Errorf("world: deploy %d %w", n, ErrNewestAlready)
	}
	return w.deploy(ctx, Deploy{Origin: old.Origin, Graph: old.Graph, RollbackOf: n})
}

// deploy stores d under the next free number: it tries the number after
// the newest it knows, which only succeeds if no deploy has it yet, and on
// a conflict tries again once the local state has the deploy that won.
func (w *World) deploy(ctx context.Context, d Deploy) (uint64, error) {
	switch {
	case len(d.Graph) > MaxDeploySize:
		return 0, fmt.Errorf("world: the graph has %d bytes: %w", len(d.Graph), ErrDeployTooLarge)
	case len(d.Origin) > maxOrigin:
		return 0, fmt.Errorf("world: deploy origin of %d bytes, at most %d", len(d.Origin), maxOrigin)
	}
	d.Host, d.Time = w.host, time.Now().UTC().Truncate(time.Millisecond)
	value, err := msgpack.Marshal(&d)
	if err != nil {
		return 0, fmt.Errorf("world: encoding the deploy: %w", err)
	}
	for range deployAttempts {
		first, last, err := w.deployRange()
		if err != nil {
			return 0, err
		}
		key := DeployKey(last + 1)
		then := []fsm.Command{{Op: fsm.OpPut, Key: key, Value: value}}
		// The oldest go, so that MaxDeploys are kept with this one.
		for n := first; n != 0 && n+MaxDeploys <= last+1 && len(then) < maxPrune; n++ {
			then = append(then, fsm.Command{Op: fsm.OpDelete, Key: DeployKey(n)})
		}
		res, err := w.apply(ctx, fsm.Command{Op: fsm.OpTxn,
			Compares: []fsm.Compare{{Target: fsm.CompareAbsent, Key: key}}, Then: then})
		if err != nil {
			return 0, fmt.Errorf("world: storing deploy %d: %w", last+1, err)
		}
		if res.OK {
			return last + 1, nil
		}
		// Another deployer took the number; the local state has its
		// deploy now (apply waited for it).
	}
	return 0, fmt.Errorf("world: no free deploy number after %d attempts: too many deployers at once", deployAttempts)
}

// maxPrune bounds the operations of one deploy's transaction: the put
// and the deletes of the oldest deploys.
const maxPrune = fsm.MaxTxnOps - 1

// deployRange returns the numbers of the oldest and the newest deploys in
// the local state, 0 and 0 if there is none.
func (w *World) deployRange() (first, last uint64, err error) {
	kvs, _ := w.f.List(DeployPrefix, 0)
	if len(kvs) == 0 {
		return 0, 0, nil
	}
	number := func(key string) (uint64, error) {
		n, err := strconv.ParseUint(strings.TrimPrefix(key, DeployPrefix), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("world: %q is not a deploy's key", key)
		}
		return n, nil
	}
	if first, err = number(kvs[0].Key); err != nil {
		return 0, 0, err
	}
	last, err = number(kvs[len(kvs)-1].Key)
	return first, last, err
}

// Deploys returns every deploy, oldest first, and the revision they are
// current at (watch DeployPrefix from it to follow them).
func (w *World) Deploys(ctx context.Context, opts ...ReadOption) ([]Deploy, uint64, error) {
	kvs, rev, err := w.List(ctx, DeployPrefix, opts...)
	if err != nil {
		return nil, 0, err
	}
	out := make([]Deploy, 0, len(kvs))
	for _, kv := range kvs {
		d, err := DecodeDeploy(kv)
		if err != nil {
			return nil, 0, err
		}
		out = append(out, d)
	}
	return out, rev, nil
}

// GetDeploy returns deploy n and whether it exists.
func (w *World) GetDeploy(ctx context.Context, n uint64, opts ...ReadOption) (Deploy, bool, error) {
	kv, ok, err := w.Get(ctx, DeployKey(n), opts...)
	if err != nil || !ok {
		return Deploy{}, false, err
	}
	d, err := DecodeDeploy(kv)
	return d, err == nil, err
}

// NewestDeploy returns the newest deploy, whether there is one, and the
// revision of the local state it was read at.
func (w *World) NewestDeploy(ctx context.Context, opts ...ReadOption) (Deploy, bool, uint64, error) {
	if err := w.prepareRead(ctx, opts); err != nil {
		return Deploy{}, false, 0, err
	}
	kvs, rev := w.f.List(DeployPrefix, 0)
	if len(kvs) == 0 {
		return Deploy{}, false, rev, nil
	}
	d, err := DecodeDeploy(kvs[len(kvs)-1])
	return d, err == nil, rev, err
}
