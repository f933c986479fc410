package resources

import (
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

// TestFileSourceNeverMakesASetuidCopyOfAnotherUsersFile copies, as root, a
// tree holding a setuid and setgid program owned by an ordinary user, and
// a single such file: the copies belong to root, so keeping the bits would
// give that user a root shell. Root's own setuid program keeps its bits.
func TestFileSourceNeverMakesASetuidCopyOfAnotherUsersFile(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: the source must belong to another user than the copy")
	}
	dir := t.TempDir()
	src, dst := filepath.Join(dir, "src")+"/", filepath.Join(dir, "dst")+"/"
	userProg, rootProg := filepath.Join(src, "user-prog"), filepath.Join(src, "root-prog")
	write(t, userProg, "#!/bin/sh\n", 0o755)
	write(t, rootProg, "#!/bin/sh\n", 0o755)
	if err := os.Chown(userProg, 4242, 4242); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{userProg, rootProg} {
		if err := os.Chmod(p, 0o755|fs.ModeSetuid|fs.ModeSetgid); err != nil {
			t.Fatal(err)
		}
	}
	tree := newFile(t, &File{Path: dst, Source: src, Recurse: true})
	single := newFile(t, &File{Path: filepath.Join(dir, "single"), Source: userProg})
	for _, f := range []*File{tree, single} {
		converge(t, f, true, false)
		converge(t, f, true, true)
	}
	for p, want := range map[string]fs.FileMode{
		filepath.Join(dst, "user-prog"): 0o755,
		filepath.Join(dir, "single"):    0o755,
		filepath.Join(dst, "root-prog"): 0o755 | fs.ModeSetuid | fs.ModeSetgid,
	} {
		fi, err := os.Lstat(p)
		if err != nil {
			t.Fatal(err)
		}
		if got := permBits(fi.Mode()); got != want {
			t.Errorf("%s: mode %v, want %v", p, got, want)
		}
	}
	// A copy already there with the bits (an older graft made it) loses them.
	if err := os.Chmod(filepath.Join(dst, "user-prog"), 0o755|fs.ModeSetuid); err != nil {
		t.Fatal(err)
	}
	converge(t, tree, true, false)
	converge(t, tree, true, true)

	// Root's program changes: its copy is replaced, bits and all, at once.
	if err := os.WriteFile(rootProg, []byte("#!/bin/sh\nexit 0\n"), 0); err != nil {
		t.Fatal(err)
	}
	converge(t, tree, true, false)
	converge(t, tree, true, true)
}
