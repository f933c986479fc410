package resources

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestFilePurgeNeverRemovesAcrossAMountPoint purges a directory holding an
// unmanaged directory with a file system mounted below it: removing it
// would wipe the mounted file system. The purge fails naming the mount
// point, and the mounted files stay.
func TestFilePurgeNeverRemovesAcrossAMountPoint(t *testing.T) {
	dir := t.TempDir()
	root := filepath.Join(dir, "d") + "/"
	mnt := filepath.Join(dir, "d", "data", "disk")
	if err := os.MkdirAll(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("graft-test", mnt, "tmpfs", 0, "size=1m"); err != nil {
		if errors.Is(err, syscall.EPERM) {
			t.Skip("needs the right to mount a tmpfs (CAP_SYS_ADMIN)")
		}
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Unmount(mnt, syscall.MNT_DETACH) })
	write(t, filepath.Join(mnt, "precious"), "P", 0o644)
	write(t, filepath.Join(root, "junk"), "j", 0o644)

	f := newFile(t, &File{Path: root, Recurse: true, Purge: true})
	_, err := f.CheckApply(t.Context(), true)
	if err == nil || !strings.Contains(err.Error(), "mount point") || !strings.Contains(err.Error(), mnt) {
		t.Errorf("CheckApply: %v, want an error naming the mount point %s", err, mnt)
	}
	if got := readFile(t, filepath.Join(mnt, "precious")); got != "P" {
		t.Errorf("mounted file: %q", got)
	}
	mustNotExist(t, filepath.Join(root, "junk"))

	// Nor does force, to replace the directory by a file of the source.
	src := filepath.Join(dir, "src") + "/"
	write(t, filepath.Join(src, "data"), "a file", 0o644)
	c := newFile(t, &File{Path: root, Source: src, Recurse: true, Force: true})
	if _, err := c.CheckApply(t.Context(), true); !errors.Is(err, ErrMountPoint) {
		t.Errorf("copy with force: %v, want ErrMountPoint", err)
	}
	if got := readFile(t, filepath.Join(mnt, "precious")); got != "P" {
		t.Errorf("mounted file after the copy: %q", got)
	}
}

// TestFileAbsentWithForceNeverWipesAMountedFileSystem: state absent with
// force removed a directory with everything under it, a file system
// mounted below it (or on it) included. It now fails naming the mount
// point and removes nothing.
func TestFileAbsentWithForceNeverWipesAMountedFileSystem(t *testing.T) {
	for _, tc := range []struct{ name, below string }{
		{"mount below the path", "data/disk"},
		{"mount on the path", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "d")
			mnt := filepath.Join(dir, tc.below)
			if err := os.MkdirAll(mnt, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := syscall.Mount("graft-test", mnt, "tmpfs", 0, "size=1m"); err != nil {
				if errors.Is(err, syscall.EPERM) {
					t.Skip("needs the right to mount a tmpfs (CAP_SYS_ADMIN)")
				}
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = syscall.Unmount(mnt, syscall.MNT_DETACH) })
			write(t, filepath.Join(mnt, "precious"), "P", 0o644)

			f := newFile(t, &File{Path: dir + "/", State: "absent", Force: true})
			_, err := f.CheckApply(t.Context(), true)
			if !errors.Is(err, ErrMountPoint) || !strings.Contains(err.Error(), mnt) {
				t.Errorf("CheckApply: %v, want ErrMountPoint naming %s", err, mnt)
			}
			if got := readFile(t, filepath.Join(mnt, "precious")); got != "P" {
				t.Errorf("mounted file: %q", got)
			}
		})
	}
}
