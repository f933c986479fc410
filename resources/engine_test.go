package resources

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/graftcm/graft/engine"
)

// runGraph runs an engine on g until the test ends.
func runGraph(t *testing.T, g *engine.Graph) {
	t.Helper()
	if err := g.Validate(); err != nil {
		t.Fatal(err)
	}
	cfg := engine.DefaultConfig()
	eng, err := engine.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	graphs := make(chan *engine.Graph, 1)
	graphs <- g
	done := make(chan error, 1)
	go func() { done <- eng.Run(ctx, graphs) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
}

// waitContent waits for the file at p to hold want.
func waitContent(t *testing.T, p, want string) {
	t.Helper()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(10 * time.Second)
	for {
		if got, err := os.ReadFile(p); err == nil && string(got) == want {
			return
		}
		select {
		case <-tick.C:
		case <-deadline:
			got, err := os.ReadFile(p)
			t.Fatalf("%s holds %q (%v), want %q", p, got, err, want)
		}
	}
}

func addVertex(t *testing.T, g *engine.Graph, kind, name string, r engine.Res, m engine.Meta) {
	t.Helper()
	if err := g.AddVertex(engine.Vertex{ID: engine.ID{Kind: kind, Name: name}, Res: r, Meta: m}); err != nil {
		t.Fatal(err)
	}
}

// exec's stdout is received as a file's content.
func TestExecStdoutIntoFileContent(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	g := engine.NewGraph("t")
	addVertex(t, g, "exec", "hello", &Exec{name: "hello", Cmd: "echo hello from exec"}, engine.Meta{})
	addVertex(t, g, "file", out, &File{name: out}, engine.Meta{Poll: time.Hour})
	if err := g.AddEdge(engine.Edge{From: engine.ID{Kind: "exec", Name: "hello"}, To: engine.ID{Kind: "file", Name: out},
		Keys: []engine.KeyMap{{Send: "stdout", Recv: "content"}}}); err != nil {
		t.Fatal(err)
	}
	runGraph(t, g)
	waitContent(t, out, "hello from exec\n")
}

// A password is received as a file's content; the file is created 0600.
func TestPasswordIntoFile(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "secret")
	g := engine.NewGraph("t")
	addVertex(t, g, "password", "pw", &Password{Length: 24}, engine.Meta{})
	addVertex(t, g, "file", out, &File{name: out, Mode: "0600"}, engine.Meta{Poll: time.Hour})
	if err := g.AddEdge(engine.Edge{From: engine.ID{Kind: "password", Name: "pw"}, To: engine.ID{Kind: "file", Name: out},
		Keys: []engine.KeyMap{{Send: "password", Recv: "content"}}}); err != nil {
		t.Fatal(err)
	}
	runGraph(t, g)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(10 * time.Second)
	for {
		if b, err := os.ReadFile(out); err == nil && len(b) == 24 {
			if fi, _ := os.Stat(out); fi.Mode().Perm() != 0o600 {
				t.Errorf("mode %v, want 0600", fi.Mode().Perm())
			}
			return
		}
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatal("the password never reached the file")
		}
	}
}

// With meta poll, drift is repaired by polling: the resource's Watch is
// never started (this file resource has no watcher, so a Watch would fail).
func TestPollRepairsDriftWithoutWatch(t *testing.T) {
	p := filepath.Join(t.TempDir(), "polled")
	g := engine.NewGraph("t")
	addVertex(t, g, "file", p, &File{name: p, Content: strptr("wanted")}, engine.Meta{Poll: 1 * time.Second})
	runGraph(t, g)
	waitContent(t, p, "wanted")
	for range 2 {
		if err := os.WriteFile(p, []byte("drift"), 0o644); err != nil {
			t.Fatal(err)
		}
		waitContent(t, p, "wanted")
	}
}
