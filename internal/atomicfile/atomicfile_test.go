package atomicfile_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/graftcm/graft/internal/atomicfile"
)

// A write replaces the file whole with the mode asked for and leaves no
// temporary file behind; a read gives it back.
func TestWriteThenRead(t *testing.T) {
	for _, durable := range []bool{false, true} {
		dir := t.TempDir()
		p := filepath.Join(dir, "f")
		if err := os.WriteFile(p, []byte("old content, longer than the new"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := atomicfile.Write(p, []byte("new"), 0o644, durable); err != nil {
			t.Fatalf("write (durable %t): %v", durable, err)
		}
		got, err := atomicfile.Read(p, 3)
		if err != nil || string(got) != "new" {
			t.Errorf("read: %q, %v; want %q", got, err, "new")
		}
		if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != 0o644 {
			t.Errorf("mode: %v, %v; want 0644", fi.Mode(), err)
		}
		if ents, _ := os.ReadDir(dir); len(ents) != 1 {
			t.Errorf("%d entries in the directory, want only the file", len(ents))
		}
	}
}

// A write that cannot happen leaves the old file as it was.
func TestFailedWriteKeepsOldFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	if err := os.WriteFile(p, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := atomicfile.Write(filepath.Join(dir, "missing", "f"), []byte("new"), 0o600, false); err == nil {
		t.Error("write into a missing directory succeeded")
	}
	if err := os.Mkdir(filepath.Join(dir, "d"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := atomicfile.Write(filepath.Join(dir, "d"), []byte("new"), 0o600, false); err == nil {
		t.Error("write over a directory succeeded")
	}
	if got, _ := os.ReadFile(p); string(got) != "old" {
		t.Errorf("old file now %q", got)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 2 {
		t.Errorf("%d entries in the directory, want the file and d: a temporary file was left", len(ents))
	}
}

// A read refuses a file over the limit, and tells a missing file apart.
func TestReadBounds(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	if err := os.WriteFile(p, []byte("four"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := atomicfile.Read(p, 3); err == nil || !strings.Contains(err.Error(), "more than 3 bytes") {
		t.Errorf("read of 4 bytes with limit 3: %v", err)
	}
	if got, err := atomicfile.Read(p, 4); err != nil || string(got) != "four" {
		t.Errorf("read at the limit: %q, %v", got, err)
	}
	if _, err := atomicfile.Read(filepath.Join(dir, "missing"), 3); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: %v, want ErrNotExist", err)
	}
}
