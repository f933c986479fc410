package engine_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/graftcm/graft/engine"
)

// ParseSema took "@@lock" for a semaphore of this host named "@@lock", so
// a graph that reached it without Graph.Validate would seem to hold a
// cluster-wide lock while holding a local one. Such tags are refused, in
// words that say the feature is not built yet.
func TestClusterSemaphoreTagIsNotTakenForALocalOne(t *testing.T) {
	for _, tag := range []string{"@@lock", "@@lock:2"} {
		id, count, err := engine.ParseSema(tag)
		if !errors.Is(err, engine.ErrClusterSemaphore) {
			t.Errorf("ParseSema(%q) = %q, %d, %v; want ErrClusterSemaphore", tag, id, count, err)
			continue
		}
		if msg := err.Error(); !strings.Contains(msg, "not built yet") || strings.Contains(msg, "World") {
			t.Errorf("ParseSema(%q): %q should say not built yet, without internal names", tag, msg)
		}
		if err := (engine.Meta{Sema: []string{tag}}).Validate(); !errors.Is(err, engine.ErrClusterSemaphore) {
			t.Errorf("Meta{Sema: %q}.Validate() = %v, want ErrClusterSemaphore", tag, err)
		}
	}
}
