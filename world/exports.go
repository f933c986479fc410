package world

import (
	"context"
	"fmt"
	"path"
	"strings"

	"github.com/graftcm/graft/fsm"
)

// Exported is a resource some host exports.
type Exported struct {
	Host string
	Kind string
	Name string
	Data []byte
}

// Export replaces, atomically, the set of resources this host exports.
// Unchanged resources produce no change; an empty set withdraws them all.
// Exports outlive the host's death, and go when it is removed from the
// cluster.
func (w *World) Export(ctx context.Context, exports []fsm.Export) error {
	if len(exports) > fsm.MaxExports {
		return fmt.Errorf("world: %d exports, at most %d", len(exports), fsm.MaxExports)
	}
	_, err := w.apply(ctx, fsm.Command{Op: fsm.OpExportSet, Node: w.host, Exports: exports})
	return err
}

// Collect returns the resources of kind that any host (this one included)
// exports whose name matches pattern (a path.Match glob; empty matches
// everything), sorted by host, kind and name, and the revision they are
// current at.
func (w *World) Collect(ctx context.Context, kind, pattern string, opts ...ReadOption) ([]Exported, uint64, error) {
	if pattern != "" {
		if _, err := path.Match(pattern, ""); err != nil {
			return nil, 0, fmt.Errorf("world: collect pattern %q: %w", pattern, err)
		}
	}
	kvs, rev, err := w.List(ctx, fsm.ExportPrefix, opts...)
	if err != nil {
		return nil, 0, err
	}
	var out []Exported
	for _, kv := range kvs {
		x, ok := parseExportKey(kv.Key)
		if !ok || (kind != "" && x.Kind != kind) {
			continue
		}
		if pattern != "" {
			if ok, _ := path.Match(pattern, x.Name); !ok {
				continue
			}
		}
		x.Data = kv.Value
		out = append(out, x)
	}
	return out, rev, nil
}

// WatchExports follows every host's exports; see Watch. Events carry keys
// that ParseExportKey reads.
func (w *World) WatchExports(ctx context.Context, from uint64) <-chan WatchEvent {
	return w.Watch(ctx, fsm.ExportPrefix, from)
}

// ParseExportKey splits an export's key into host, kind and name.
func ParseExportKey(key string) (Exported, bool) { return parseExportKey(key) }

func parseExportKey(key string) (Exported, bool) {
	rest, ok := strings.CutPrefix(key, fsm.ExportPrefix)
	if !ok {
		return Exported{}, false
	}
	parts := strings.SplitN(rest, "/", 3)
	if len(parts) != 3 {
		return Exported{}, false
	}
	return Exported{Host: parts[0], Kind: parts[1], Name: parts[2]}, true
}
