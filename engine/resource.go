package engine

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sort"
)

// ID names a vertex: a resource kind and a name unique within that kind.
type ID struct {
	Kind string `json:"kind"`
	Name string `json:"name"`
}

// String formats the ID the way logs and errors show it: kind[name].
func (id ID) String() string { return id.Kind + "[" + id.Name + "]" }

// Res is a resource: a piece of host state that graft keeps as declared.
//
// Parameters live in exported fields; anything a resource keeps at run time
// lives in unexported ones. Two resources of the same kind and name whose
// exported fields are equal are the same resource, and a graph swap leaves it
// running untouched.
//
// Threading contract: Validate and Init are called before Watch starts. Watch
// runs on a goroutine of its own for as long as the vertex is in the graph.
// CheckApply is never called concurrently with itself, but runs concurrently
// with Watch. Cleanup is called once, after Watch has returned and no
// CheckApply is running.
type Res interface {
	// Validate checks the parameters. It must not touch the host.
	Validate() error

	// Init hands the resource its run-time capabilities. It is called once,
	// before Watch.
	Init(rt *Runtime) error

	// Watch reports changes until ctx is cancelled. It calls rt.Running once
	// its watches are in place, then rt.Event whenever the state may have
	// changed. Returning nil before ctx is done means "nothing more to watch"
	// and is not an error; returning an error fails the vertex.
	Watch(ctx context.Context) error

	// CheckApply checks the state and, if apply is true, fixes it. It returns
	// true if the state was already correct and false if it changed it (or,
	// with apply false, would have). An error means the state could not be
	// checked or fixed; checkOK is then ignored.
	CheckApply(ctx context.Context, apply bool) (checkOK bool, err error)

	// Cleanup releases what Init acquired.
	Cleanup() error
}

// Runtime is what the engine gives a resource at Init: who it is, where to
// log, and the functions through which it talks to the engine. All of them
// are safe to call from any goroutine.
type Runtime struct {
	// ID is the vertex's kind and name.
	ID ID
	// Hostname is the name of the host the engine runs on.
	Hostname string
	// Logger logs with the resource's ID attached. Never nil.
	Logger *slog.Logger
	// World is the cluster-wide state (Config.World); nil in an engine
	// given none, where a resource that needs it fails Init with
	// ErrNoWorld.
	World World

	// Running tells the engine Watch is ready. Until it is called the vertex
	// never runs CheckApply. A second call counts as Event.
	Running func()
	// Event tells the engine the state may have changed. It never blocks;
	// events that arrive before the engine handles the first one coalesce.
	Event func()
	// Refresh reports, during CheckApply, whether a notify edge into this
	// vertex delivered a refresh since its last successful CheckApply.
	Refresh func() bool

	// Send publishes output values for send/recv edges, during CheckApply.
	// Keys and types must be those the resource's Sends declares. Values
	// sent by a CheckApply that fails are dropped.
	Send func(map[string]any) error
	// Recv reports, during CheckApply, which parameters send/recv edges
	// changed since the last successful CheckApply. The engine sets such
	// parameters and re-validates the resource before calling CheckApply,
	// so Watch must not read a parameter that can be received after it has
	// called Running.
	Recv func() map[string]bool
	// Fences returns, during CheckApply, the fencing token of each cluster
	// semaphore slot the CheckApply runs under (meta sema tags starting
	// with "@@"), by semaphore id without the @@; nil when it holds none.
	// A token is larger than that of every earlier holder of the
	// semaphore: pass it to the system the semaphore guards, so that it
	// can refuse a holder whose slot has gone since. The map is the
	// caller's.
	Fences func() map[string]uint64
}

// Kind describes one kind of resource for a [Registry].
type Kind struct {
	// Name is the kind's name as graphs spell it, such as "file".
	Name string
	// New returns a resource of this kind with default parameters, for the
	// given resource name. Frontends decode parameters into it.
	New func(name string) Res
}

// Registry maps kind names to kinds. It is built explicitly by whoever wires
// the program together; there is no global registry.
type Registry struct {
	kinds map[string]Kind
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{kinds: map[string]Kind{}} }

// Add registers a kind. Adding a name twice is an error.
func (r *Registry) Add(k Kind) error {
	if k.Name == "" || k.New == nil {
		return fmt.Errorf("registry: kind %q needs a name and a constructor", k.Name)
	}
	if _, dup := r.kinds[k.Name]; dup {
		return fmt.Errorf("registry: kind %q registered twice", k.Name)
	}
	r.kinds[k.Name] = k
	return nil
}

// Lookup returns the kind registered under name.
func (r *Registry) Lookup(name string) (Kind, bool) {
	k, ok := r.kinds[name]
	return k, ok
}

// Names returns the registered kind names, sorted.
func (r *Registry) Names() []string {
	names := make([]string, 0, len(r.kinds))
	for n := range r.kinds {
		names = append(names, n)
	}
	sort.Strings(names)
	return slices.Clip(names)
}
