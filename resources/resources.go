// Package resources implements graft's resource kinds (file, exec, timer,
// print, noop, password, kv, pkg, user, group, hostname, msg, svc) and registers
// them by name in an engine registry.
package resources

import (
	"github.com/graftcm/graft/engine"
	"github.com/graftcm/graft/internal/fswatch"
)

// Deps are the shared services resources use. The caller owns them and keeps
// them running for as long as resources from the registry run.
type Deps struct {
	// Files watches paths for file resources. Nil is allowed for registries
	// that only validate graphs; a file resource's Watch then fails.
	Files *fswatch.Hub
	// ExecStateDir is where exec resources record the commands they are
	// running, so that an agent restarted after being killed kills what
	// the killed one left before running anything again. It is created
	// when first needed. Empty records nothing; the commands still die
	// with the agent.
	ExecStateDir string
}

// NewRegistry returns a registry holding every resource kind of this
// package, wired to deps.
func NewRegistry(deps Deps) *engine.Registry {
	r := engine.NewRegistry()
	tools := newShadowTools()
	var runs *execRuns
	if deps.ExecStateDir != "" {
		runs = newExecRuns(deps.ExecStateDir)
	}
	managed := newManagedPaths() // what file purges keep
	for _, k := range []engine.Kind{
		{Name: "noop", New: func(name string) engine.Res { return &Noop{name: name} }},
		{Name: "print", New: func(name string) engine.Res { return &Print{name: name} }},
		{Name: "timer", New: func(name string) engine.Res { return &Timer{} }},
		{Name: "exec", New: func(name string) engine.Res { return &Exec{name: name, runs: runs} }},
		{Name: "file", New: func(name string) engine.Res { return &File{name: name, hub: deps.Files, managed: managed} }},
		{Name: "password", New: func(name string) engine.Res { return &Password{} }},
		{Name: "kv", New: func(name string) engine.Res { return &KV{name: name} }},
		{Name: "user", New: func(name string) engine.Res { return &User{name: name, hub: deps.Files, tools: tools} }},
		{Name: "group", New: func(name string) engine.Res { return &Group{name: name, hub: deps.Files, tools: tools} }},
		{Name: "pkg", New: func(name string) engine.Res { return newPkg(name, deps.Files) }},
		{Name: "hostname", New: func(name string) engine.Res { return &Hostname{name: name, hub: deps.Files} }},
		{Name: "msg", New: func(name string) engine.Res { return &Msg{name: name} }},
		{Name: "svc", New: func(name string) engine.Res { return &Svc{name: name} }},
	} {
		if err := r.Add(k); err != nil {
			panic(err) // the list above is fixed: a duplicate is a programming error
		}
	}
	return r
}
