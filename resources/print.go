package resources

import (
	"context"

	"github.com/graftcm/graft/engine"
)

// Print logs a message each time it runs: on start, and on refresh.
type Print struct {
	// Msg is the message to log.
	Msg string `yaml:"msg"`
	// RefreshOnly logs only when a notify edge delivered a refresh.
	RefreshOnly bool `yaml:"refresh_only"`

	name string
	rt   *engine.Runtime
}

// Validate accepts everything.
func (p *Print) Validate() error { return nil }

// Init keeps the runtime.
func (p *Print) Init(rt *engine.Runtime) error { p.rt = rt; return nil }

// Cleanup does nothing.
func (p *Print) Cleanup() error { return nil }

// Watch has nothing to watch.
func (p *Print) Watch(context.Context) error {
	p.rt.Running()
	return nil
}

// CheckApply logs the message. Printing changes no state, so it always
// reports being in state.
func (p *Print) CheckApply(_ context.Context, apply bool) (bool, error) {
	if p.RefreshOnly && !p.rt.Refresh() {
		return true, nil
	}
	if apply {
		p.rt.Logger.Info("print", "msg", p.Msg)
	}
	return true, nil
}

// GroupKey lets prints group, except refresh_only ones, which must see
// their own refreshes.
func (p *Print) GroupKey() string {
	if p.RefreshOnly {
		return ""
	}
	return "print"
}
