package resources

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/graftcm/graft/engine"
)

// purgeFixture is a directory with managed and unmanaged entries, and a
// symlink in it that leads out of the tree.
type purgeFixture struct {
	root, outside string
	managed       *managedPaths
	others        []*File // file resources managing paths under root
}

func newPurgeFixture(t *testing.T) *purgeFixture {
	dir := t.TempDir()
	fx := &purgeFixture{root: filepath.Join(dir, "d") + "/", outside: filepath.Join(dir, "outside"), managed: newManagedPaths()}
	write(t, filepath.Join(fx.outside, "precious"), "P", 0o644)
	for _, rel := range []string{"keep", "junk", "sub/keep2", "sub/junk2", "gone/x", "kept-dir/unmanaged-inside"} {
		write(t, filepath.Join(fx.root, rel), rel, 0o644)
	}
	if err := os.Symlink(fx.outside, filepath.Join(fx.root, "link")); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{filepath.Join(fx.root, "keep"), filepath.Join(fx.root, "sub", "keep2"), filepath.Join(fx.root, "kept-dir") + "/"} {
		o := &File{Path: p, managed: fx.managed}
		newFile(t, o)
		fx.others = append(fx.others, o)
	}
	return fx
}

func TestFilePurgeRemovesOnlyWhatNoResourceManagesAndNeverLeavesTheTree(t *testing.T) {
	fx := newPurgeFixture(t)
	f, logs := newLoggedFile(t, &File{Path: fx.root, Recurse: true, Purge: true, managed: fx.managed})

	converge(t, f, false, false) // noop removes nothing, logs each removal
	recs := logs.take()
	removed := map[string]bool{}
	for _, r := range recs {
		if r.msg == "would change" && r.attrs["action"] == "remove" {
			removed[r.attrs["path"]] = true
		}
	}
	want := []string{"junk", "sub/junk2", "gone", "link"}
	if len(removed) != len(want) {
		t.Errorf("noop would remove %v, want %v", removed, want)
	}
	for _, rel := range want {
		if !removed[filepath.Join(fx.root, rel)] {
			t.Errorf("noop does not log removing %s: %v", rel, removed)
		}
		if _, err := os.Lstat(filepath.Join(fx.root, rel)); err != nil {
			t.Errorf("noop removed %s: %v", rel, err)
		}
	}

	converge(t, f, true, false)
	for _, rel := range want {
		mustNotExist(t, filepath.Join(fx.root, rel))
	}
	for _, rel := range []string{"keep", "sub/keep2", "kept-dir/unmanaged-inside"} {
		if got := readFile(t, filepath.Join(fx.root, rel)); got != rel {
			t.Errorf("managed %s: %q", rel, got)
		}
	}
	if got := readFile(t, filepath.Join(fx.outside, "precious")); got != "P" {
		t.Errorf("purge followed the symlink out of the tree: %q", got)
	}
	converge(t, f, true, true)

	// Drift: an unmanaged file appears; a resource leaves the graph.
	write(t, filepath.Join(fx.root, "sub", "new"), "n", 0o644)
	if err := fx.others[0].Cleanup(); err != nil {
		t.Fatal(err)
	}
	converge(t, f, true, false)
	mustNotExist(t, filepath.Join(fx.root, "sub", "new"))
	mustNotExist(t, filepath.Join(fx.root, "keep"))
	converge(t, f, true, true)
}

func TestFilePurgeWithSourceKeepsTheSourceEntries(t *testing.T) {
	dir := t.TempDir()
	src, dst := filepath.Join(dir, "src")+"/", filepath.Join(dir, "dst")+"/"
	write(t, filepath.Join(src, "a"), "A", 0o644)
	write(t, filepath.Join(dst, "a"), "old", 0o644)
	write(t, filepath.Join(dst, "extra", "x"), "X", 0o644)
	f := newFile(t, &File{Path: dst, Source: src, Recurse: true, Purge: true, managed: newManagedPaths()})
	converge(t, f, true, false)
	if got := readFile(t, filepath.Join(dst, "a")); got != "A" {
		t.Errorf("a: %q", got)
	}
	mustNotExist(t, filepath.Join(dst, "extra"))
	converge(t, f, true, true)
}

func TestFilePurgeRefusesRootAndNeedsRecurse(t *testing.T) {
	for _, f := range []*File{
		{Path: "/", Recurse: true, Purge: true},
		{Path: "/tmp/x/", Purge: true},
		{Path: "/tmp/x", Recurse: true, Purge: true},
		{Path: "/tmp/x/", Recurse: true, Purge: true, Content: strptr("")},
	} {
		if err := f.Validate(); err == nil {
			t.Errorf("Validate(%+v) accepted it", *f)
		}
	}
}

// A purged directory claims only its path, so the graph may manage files
// under it; a copied directory tree claims its subtree.
func TestFileClaimsOfPurgeAndCopiedTree(t *testing.T) {
	graph := func(parent *File) error {
		g := engine.NewGraph("g")
		for name, r := range map[string]engine.Res{"parent": parent, "child": &File{Path: "/srv/d/f", Content: strptr("x")}} {
			if err := g.AddVertex(engine.Vertex{ID: engine.ID{Kind: "file", Name: name}, Res: r}); err != nil {
				return err
			}
		}
		return g.Validate()
	}
	if err := graph(&File{Path: "/srv/d/", Recurse: true, Purge: true}); err != nil {
		t.Errorf("purged directory with a managed file in it: %v", err)
	}
	err := graph(&File{Path: "/srv/d/", Source: "/srv/src/", Recurse: true})
	if !errors.Is(err, engine.ErrConflict) {
		t.Errorf("copied tree with a managed file in it: %v, want a conflict", err)
	}
	err = graph(&File{Path: "/srv/d", Source: "/srv/target", Symlink: true})
	if !errors.Is(err, engine.ErrConflict) {
		t.Errorf("symlink with a managed file under it: %v, want a conflict", err)
	}
}

// TestFilePurgeKeepsAFileWhoseResourceIsReplacedInAGraphSwap follows the
// engine's order when a graph swap changes a file resource's parameters:
// the new graph is loaded (and validated), the old resource cleaned up,
// then the new one initialised; a purge running in between (a kept vertex
// runs on during the swap) must not remove the file.
func TestFilePurgeKeepsAFileWhoseResourceIsReplacedInAGraphSwap(t *testing.T) {
	dir := t.TempDir()
	root, conf := filepath.Join(dir, "d")+"/", filepath.Join(dir, "d", "conf")
	write(t, conf, "settings the graph does not manage", 0o600)
	reg := NewRegistry(Deps{})
	mk := func(name string, set func(*File)) *File {
		k, ok := reg.Lookup("file")
		if !ok {
			t.Fatal("no file kind")
		}
		f := k.New(name).(*File)
		set(f)
		if err := f.Validate(); err != nil {
			t.Fatal(err)
		}
		return f
	}
	old := mk(conf, func(f *File) { f.State, f.Mode = stateExists, "0600" })
	if err := old.Init(&newTestRuntime("file", conf).Runtime); err != nil {
		t.Fatal(err)
	}
	purge := mk(root, func(f *File) { f.Recurse, f.Purge = true, true })
	if err := purge.Init(&newTestRuntime("file", root).Runtime); err != nil {
		t.Fatal(err)
	}
	converge(t, purge, true, true)

	next := mk(conf, func(f *File) { f.State, f.Mode = stateExists, "0640" }) // the new graph's
	if err := old.Cleanup(); err != nil {
		t.Fatal(err)
	}
	if _, err := purge.CheckApply(t.Context(), true); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, conf); got != "settings the graph does not manage" {
		t.Errorf("conf holds %q", got)
	}
	if err := next.Init(&newTestRuntime("file", conf).Runtime); err != nil {
		t.Fatal(err)
	}
	converge(t, purge, true, true)
}
