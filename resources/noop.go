package resources

import (
	"context"

	"github.com/graftcm/graft/engine"
)

// Noop does nothing. It is useful as a grouping point in a graph and to
// observe refresh notifications.
type Noop struct {
	// Comment is free text.
	Comment string `yaml:"comment"`

	name string
	rt   *engine.Runtime
}

// Validate accepts everything.
func (n *Noop) Validate() error { return nil }

// Init keeps the runtime.
func (n *Noop) Init(rt *engine.Runtime) error { n.rt = rt; return nil }

// Cleanup does nothing.
func (n *Noop) Cleanup() error { return nil }

// Watch has nothing to watch.
func (n *Noop) Watch(context.Context) error {
	n.rt.Running()
	return nil
}

// CheckApply is always in state; it logs refreshes it receives.
func (n *Noop) CheckApply(context.Context, bool) (bool, error) {
	if n.rt.Refresh() {
		n.rt.Logger.Info("received refresh")
	}
	return true, nil
}

// GroupKey lets every noop group with the others.
func (n *Noop) GroupKey() string { return "noop" }
