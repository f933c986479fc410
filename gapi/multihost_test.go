package gapi_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hashicorp/raft"

	"github.com/graftcm/graft/cluster"
	"github.com/graftcm/graft/cluster/clustertest"
	"github.com/graftcm/graft/engine"
	"github.com/graftcm/graft/gapi"
	"github.com/graftcm/graft/gapi/yamlgraph"
	"github.com/graftcm/graft/world"
)

// agent is one host: a cluster server, its World, a combiner and an
// engine applying real file resources in a directory of its own.
type agent struct {
	slot *clustertest.Slot
	dir  string
	in   chan *gapi.Declared
	stop func()

	mu   sync.Mutex
	last *engine.Graph // the graph the engine took last
}

func startAgent(t *testing.T, slot *clustertest.Slot) *agent {
	t.Helper()
	a := &agent{slot: slot, dir: t.TempDir(), in: make(chan *gapi.Declared)}
	w, err := world.New(slot.Server().Node(), slot.ID, nil)
	if err != nil {
		t.Fatal(err)
	}
	comb, err := gapi.New(gapi.Config{Worlds: gapi.Static(w), Decode: yamlgraph.CollectDecoder(registry()),
		Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	cfg := engine.DefaultConfig()
	cfg.Hostname = slot.ID
	eng, err := engine.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	combined, graphs := make(chan *engine.Graph), make(chan *engine.Graph)
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := comb.Run(ctx, a.in, combined); err != nil {
			t.Error(err)
		}
	})
	wg.Go(func() { // hand each graph on, noting the one the engine took
		for {
			select {
			case <-ctx.Done():
				return
			case g := <-combined:
				select {
				case <-ctx.Done():
					return
				case graphs <- g:
					a.mu.Lock()
					a.last = g
					a.mu.Unlock()
				}
			}
		}
	})
	wg.Go(func() {
		if err := eng.Run(ctx, graphs); err != nil {
			t.Error(err)
		}
	})
	var once sync.Once
	a.stop = func() { once.Do(func() { cancel(); wg.Wait() }) }
	t.Cleanup(a.stop)
	return a
}

// graph is what host i declares: two exported files and two local ones
// (all polled: the test runs on a fake clock, without inotify), and every
// exported file collected into its directory. skip names exports left out.
func (a *agent) graph(i int, skip ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "graph: host%d\nresources:\n  file:\n", i)
	for _, n := range []string{"a", "b"} {
		x := fmt.Sprintf("x%d%s", i, n)
		if !slices.Contains(skip, x) {
			fmt.Fprintf(&b, "  - {name: \"@@%s\", path: /exported/%s, content: \"%s\\n\", meta: {poll: 1}}\n", x, x, x)
		}
		l := fmt.Sprintf("l%d%s", i, n)
		fmt.Fprintf(&b, "  - {name: %s, path: %s, content: \"%s\\n\", meta: {poll: 1}}\n", l, filepath.Join(a.dir, l), l)
	}
	fmt.Fprintf(&b, "collect:\n- {kind: file, pattern: %s}\n", a.dir)
	return b.String()
}

func (a *agent) declare(t *testing.T, src string) {
	t.Helper()
	d, _, err := yamlgraph.Declare(a.slot.ID+".yaml", []byte(src), registry(), yamlgraph.Options{})
	if err != nil {
		t.Fatal(err)
	}
	a.in <- d
}

// runs reports whether the engine's graph has the file resource name.
func (a *agent) runs(name string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.last == nil {
		return false
	}
	_, ok := a.last.Vertex(engine.ID{Kind: "file", Name: name})
	return ok
}

// files lists the agent's directory as name=content.
func (a *agent) files(t *testing.T) string {
	t.Helper()
	entries, err := os.ReadDir(a.dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(a.dir, e.Name()))
		if errors.Is(err, fs.ErrNotExist) {
			// A file resource's temporary copy, renamed over its file
			// between the listing and the read: the files are changing.
			return "changing"
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, e.Name()+"="+strings.TrimSpace(string(data)))
	}
	return strings.Join(out, " ")
}

// startFleet starts three servers that export-grace withdraws a removed
// host's exports after grace, and waits for three voters.
func startFleet(t *testing.T, grace time.Duration) *clustertest.Fleet {
	t.Helper()
	cfg := cluster.TestServerConfig()
	cfg.ExportGrace = grace
	f := clustertest.NewFleet(t, 3, &cfg)
	f.Start(f.Slots[0], nil)
	for _, s := range f.Slots[1:] {
		f.Start(s, func(c *cluster.ServerConfig) { c.Join = []string{f.Slots[0].GossipAddr()} })
	}
	waitFor(t, "three voters", func() bool { return len(voters(t, f.Slots[0])) == 3 })
	return f
}

func voters(t *testing.T, s *clustertest.Slot) []string {
	t.Helper()
	servers, err := s.Server().Node().Configuration()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, srv := range servers {
		if srv.Suffrage == raft.Voter {
			out = append(out, string(srv.ID))
		}
	}
	return out
}

// Issue 10's three hosts: each exports two files, keeps two local and
// collects every exported file into its own directory. Every host ends with
// its two local files and all six exported ones, and none of the others'
// local files; an export dropped from a host's graph stops being managed
// everywhere it was collected (the file stays on disk, as in mgmt); a
// killed host's exports stay until it is removed from the cluster, then go
// within the export grace.
func TestThreeHostsShareExportedFiles(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const grace = 5 * time.Second
		f := startFleet(t, grace)
		agents := make([]*agent, 3)
		for i, s := range f.Slots {
			agents[i] = startAgent(t, s)
		}
		for i, a := range agents {
			a.declare(t, a.graph(i))
		}
		exported := "x0a=x0a x0b=x0b x1a=x1a x1b=x1b x2a=x2a x2b=x2b"
		for i, a := range agents {
			want := fmt.Sprintf("l%da=l%da l%db=l%db %s", i, i, i, i, exported)
			waitFor(t, fmt.Sprintf("host %d's files", i), func() bool { return a.files(t) == want })
		}

		// Host 0 drops x0b: no host manages it any longer.
		agents[0].declare(t, agents[0].graph(0, "x0b"))
		dropped := time.Now()
		for i, a := range agents {
			waitFor(t, fmt.Sprintf("host %d running without x0b", i), func() bool { return !a.runs("x0b") && a.runs("x0a") })
		}
		if took := time.Since(dropped); took > time.Second {
			t.Errorf("the collecting hosts swapped %v after the export was dropped, want within a second", took)
		}
		synctest.Wait() // every engine has swapped
		for _, a := range agents {
			for _, x := range []string{"x0a", "x0b"} {
				if err := os.WriteFile(filepath.Join(a.dir, x), []byte("drift\n"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
		}
		for i, a := range agents {
			waitFor(t, fmt.Sprintf("host %d repairing x0a", i), func() bool { return strings.Contains(a.files(t), "x0a=x0a ") })
		}
		time.Sleep(3 * time.Second) // three polls, on the fake clock
		for i, a := range agents {
			if !strings.Contains(a.files(t), "x0b=drift ") {
				t.Errorf("host %d still manages x0b, dropped from host 0's graph: %s", i, a.files(t))
			}
		}

		// Host 2 crashes: its exports stay while it is a member...
		f.Kill(f.Slots[2])
		agents[2].stop()
		live := agents[:2]
		waitFor(t, "host 2 removed from the cluster", func() bool {
			return !slices.Contains(voters(t, f.Slots[0]), f.Slots[2].ID)
		})
		removed := time.Now()
		for i, a := range live {
			if !a.runs("x2a") || !a.runs("x2b") {
				t.Errorf("host %d dropped host 2's exports before host 2 was removed", i)
			}
		}
		// ...and go within the grace once it is removed.
		for i, a := range live {
			waitFor(t, fmt.Sprintf("host %d without host 2's exports", i), func() bool { return !a.runs("x2a") && !a.runs("x2b") })
		}
		if took := time.Since(removed); took > grace+2*time.Second {
			t.Errorf("host 2's exports withdrawn %v after its removal, want within the %v grace and a few passes", took, grace)
		}
	})
}
