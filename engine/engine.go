package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Config configures an Engine. The zero value is not valid; start from
// DefaultConfig.
type Config struct {
	// Hostname is handed to every resource. Required.
	Hostname string

	// Noop runs every CheckApply with apply false: resources report what they
	// would change and change nothing.
	Noop bool

	// ConvergedTimeout is how long the graph must go without a CheckApply
	// that changed something (or failed) before it counts as converged. A
	// negative value turns convergence reporting off; zero reports converged
	// as soon as every vertex is settled.
	ConvergedTimeout time.Duration

	// Sema, when positive, is a semaphore of that count that every
	// CheckApply holds, bounding how many run at once (mgmt's --sema).
	Sema int

	// StateDir, if set, is where the engine persists pending refreshes so
	// they survive a crash. Empty persists nothing.
	StateDir string

	// World, if set, is the cluster-wide state handed to resources in
	// Runtime.World.
	World World
	// ClusterSemaphores, if set, holds the semaphores whose tags start
	// with "@@"; without it a graph using one is refused.
	ClusterSemaphores ClusterSemaphores

	// OnConverged, if set, is called whenever the converged state changes.
	// It runs on the scheduler goroutine and must not block.
	OnConverged func(Status)

	// SwapTimeout bounds how long a graph swap waits for the running
	// CheckApply calls of the vertices it replaces or removes (it never
	// waits for those it keeps, which go on running meanwhile). After it
	// those calls are cancelled, and after StopTimeout more the swap goes
	// ahead without the ones that ignore it.
	SwapTimeout time.Duration

	// StopTimeout bounds how long the engine waits for a misbehaving
	// resource: a Watch that ignores its cancelled context when its vertex
	// is removed or the engine stops, or a CheckApply that ignores Abort.
	// After it the engine logs the resource and goes on without it.
	StopTimeout time.Duration

	// Observer, if set, is told about every CheckApply (see Observer).
	Observer Observer

	// Logger receives the engine's logs. Nil discards them.
	Logger *slog.Logger
}

// DefaultConfig returns a configuration with convergence reporting off, a
// five-minute SwapTimeout, a ten-second StopTimeout and the hostname
// "localhost"; callers normally set Hostname.
func DefaultConfig() Config {
	return Config{Hostname: "localhost", ConvergedTimeout: -1, SwapTimeout: 5 * time.Minute,
		StopTimeout: 10 * time.Second}
}

// Validate checks the configuration.
func (c Config) Validate() error {
	if c.Hostname == "" {
		return errors.New("engine config: Hostname is empty")
	}
	if c.Sema < 0 {
		return fmt.Errorf("engine config: Sema is %d, want 0 (off) or a positive count", c.Sema)
	}
	if c.SwapTimeout <= 0 {
		return fmt.Errorf("engine config: SwapTimeout is %v, want a positive duration", c.SwapTimeout)
	}
	if c.StopTimeout <= 0 {
		return fmt.Errorf("engine config: StopTimeout is %v, want a positive duration", c.StopTimeout)
	}
	return nil
}

// Status is a change of the engine's converged state.
type Status struct {
	// Converged is true when every vertex has settled and nothing changed
	// for ConvergedTimeout.
	Converged bool
	// Failed lists, sorted, the vertices whose last CheckApply or Watch
	// failed. It is only filled when Converged is true.
	Failed []ID
	// WouldChange lists, sorted, the vertices whose last CheckApply ran with
	// apply off (Config.Noop or meta noop) and found them out of state:
	// what a run without noop would change. Only filled when Converged.
	WouldChange []ID
}

// ErrAborted is returned by Run when Abort cut shutdown short.
var ErrAborted = errors.New("engine: aborted")

// Engine runs resource graphs. Create it with New and call Run once.
type Engine struct {
	cfg   Config
	log   *slog.Logger
	ran   atomic.Bool
	abort chan struct{}
	once  sync.Once
	board *board // the status Snapshot reads
}

// New returns an engine for the given configuration.
func New(cfg Config) (*Engine, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Engine{cfg: cfg, log: log, abort: make(chan struct{}), board: newBoard()}, nil
}

// Abort cancels the contexts of running CheckApply calls and makes Run stop
// as soon as they return. It is safe to call at any time, more than once,
// and from any goroutine.
func (e *Engine) Abort() { e.once.Do(func() { close(e.abort) }) }

// Run runs graphs until ctx is cancelled. Each graph received replaces the
// one running (see the package documentation); a graph that fails Validate
// is logged and ignored. A closed channel means no more graphs: the last one
// keeps running.
//
// When ctx is cancelled Run starts no new CheckApply, waits for those in
// flight to finish, stops every Watch, calls every Cleanup and returns nil.
// Abort makes it cancel the in-flight calls instead of waiting for them; Run
// then returns ErrAborted. Every goroutine Run starts has exited when it
// returns.
func (e *Engine) Run(ctx context.Context, graphs <-chan *Graph) error {
	if !e.ran.CompareAndSwap(false, true) {
		return errors.New("engine: Run called twice")
	}
	s := newScheduler(ctx, e)
	st, err := openState(e.cfg.StateDir, e.log)
	if err != nil {
		return err
	}
	s.state = st
	return s.loop(ctx, graphs)
}

// safeCheckApply calls CheckApply, turning a panic into an error.
func safeCheckApply(ctx context.Context, r Res, apply bool) (ok bool, err error) {
	defer func() {
		if p := recover(); p != nil {
			ok, err = false, fmt.Errorf("CheckApply panicked: %v", p)
		}
	}()
	return r.CheckApply(ctx, apply)
}

// safeInit calls Init, turning a panic into an error.
func safeInit(r Res, rt *Runtime) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("Init panicked: %v", p)
		}
	}()
	return r.Init(rt)
}

// safeCleanup calls Cleanup, turning a panic into an error.
func safeCleanup(r Res) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("Cleanup panicked: %v", p)
		}
	}()
	return r.Cleanup()
}

// safeWatch calls Watch, turning a panic into an error.
func safeWatch(ctx context.Context, r Res) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("Watch panicked: %v", p)
		}
	}()
	return r.Watch(ctx)
}

// sortIDs sorts IDs by kind, then name.
func sortIDs(ids []ID) { slices.SortFunc(ids, compareIDs) }
