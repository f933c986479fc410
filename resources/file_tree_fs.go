package resources

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// The tree's operations below its root go through an os.Root opened on
// the root directory: each path is resolved from that open directory, one
// element at a time, and never leaves it, so a directory of the tree
// swapped for a symlink (by another process, between a check and a
// change) cannot make a copy write, or a purge remove, outside the tree.
// The root itself is the declared path, handled by path like every file.

// openRoot opens the tree's root directory dst, and checks that what it
// opened is the directory found by Lstat (not a symlink put there since).
func (t *tree) openRoot(dst string) error {
	r, err := os.OpenRoot(dst)
	if err != nil {
		return err
	}
	opened, err := r.Stat(".")
	if err == nil {
		var fi fs.FileInfo
		if fi, err = os.Lstat(dst); err == nil && !os.SameFile(opened, fi) {
			err = fmt.Errorf("%s changed while it was opened", dst)
		}
	}
	if err != nil {
		r.Close()
		return err
	}
	t.root, t.rootPath = r, dst
	return nil
}

func (t *tree) close() {
	if t.root != nil {
		t.root.Close()
	}
	if t.src != nil {
		t.src.Close()
	}
}

// openSource opens the source directory src (the graph names it: a
// symlink there is followed). The source's entries are then read through
// it, never through a symlink below it, even one swapped in for a
// directory since it was listed.
func (t *tree) openSource(src string) error {
	r, err := os.OpenRoot(src)
	if err != nil {
		return err
	}
	t.src, t.srcPath = r, src
	return nil
}

// srel returns p relative to the open source directory, or "" when p is
// not below it (or none is open): such a p is read by path.
func (t *tree) srel(p string) string {
	if t.src == nil || !within(p, t.srcPath) {
		return ""
	}
	r, err := filepath.Rel(t.srcPath, p)
	if err != nil {
		return ""
	}
	return r
}

// sstat returns the FileInfo of the source entry p, never following a
// symlink below the source directory.
func (t *tree) sstat(p string) (fs.FileInfo, error) {
	if r := t.srel(p); r != "" {
		return t.src.Lstat(r)
	}
	return os.Stat(p)
}

func (t *tree) sreadDir(p string) ([]fs.DirEntry, error) {
	r := t.srel(p)
	if r == "" {
		return os.ReadDir(p)
	}
	d, err := t.src.OpenFile(r, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_DIRECTORY, 0)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	return d.ReadDir(-1)
}

func (t *tree) sreadlink(p string) (string, error) {
	if r := t.srel(p); r != "" {
		return t.src.Readlink(r)
	}
	return os.Readlink(p)
}

// sopen opens the source file p to read, never through a symlink below
// the source directory.
func (t *tree) sopen(p string) (*os.File, error) {
	if r := t.srel(p); r != "" {
		return regularOnly(t.src.OpenFile(r, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0))
	}
	return regularOnly(os.OpenFile(p, os.O_RDONLY|syscall.O_NONBLOCK, 0))
}

// regularOnly passes on f, opened without blocking, if it is a regular
// file: a FIFO swapped in since it was listed would block the read.
func regularOnly(f *os.File, err error) (*os.File, error) {
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err == nil && !fi.Mode().IsRegular() {
		err = fmt.Errorf("%s is a %s, not a regular file", f.Name(), describe(fi))
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// rel returns p relative to the tree's root, or "" when p is not below it
// (or there is no open root): such a p is handled by path.
func (t *tree) rel(p string) string {
	if t.root == nil || !within(p, t.rootPath) {
		return ""
	}
	r, err := filepath.Rel(t.rootPath, p)
	if err != nil {
		return ""
	}
	return r
}

func (t *tree) lstat(p string) (fs.FileInfo, error) {
	if r := t.rel(p); r != "" {
		return t.root.Lstat(r)
	}
	return os.Lstat(p)
}

func (t *tree) readDir(p string) ([]fs.DirEntry, error) {
	r := t.rel(p)
	if r == "" {
		return os.ReadDir(p)
	}
	d, err := t.root.Open(r)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	return d.ReadDir(-1)
}

func (t *tree) removeAll(p string) error {
	if r := t.rel(p); r != "" {
		return t.root.RemoveAll(r)
	}
	return removeAll(p)
}

func (t *tree) mkdirAll(p string, mode fs.FileMode) error {
	if r := t.rel(p); r != "" {
		return t.root.MkdirAll(r, mode)
	}
	return os.MkdirAll(p, mode)
}

func (t *tree) chmod(p string, mode fs.FileMode) error {
	if r := t.rel(p); r != "" {
		return t.root.Chmod(r, mode)
	}
	return os.Chmod(p, mode)
}

func (t *tree) readlink(p string) (string, error) {
	if r := t.rel(p); r != "" {
		return t.root.Readlink(r)
	}
	return os.Readlink(p)
}

// open opens the file p to read, never through a final symlink.
func (t *tree) open(p string) (*os.File, error) {
	if r := t.rel(p); r != "" {
		return regularOnly(t.root.OpenFile(r, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0))
	}
	return regularOnly(os.OpenFile(p, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0))
}

// tmpName returns a fresh name beside p for a file to rename over it.
func tmpName(p, kind string) string {
	return filepath.Join(filepath.Dir(p), "."+filepath.Base(p)+".graft-"+kind+"-"+rand.Text()[:10])
}

// symlink makes p a symlink to target, atomically replacing what is there.
func (t *tree) symlink(target, p string) error {
	r := t.rel(p)
	if r == "" {
		return replaceSymlink(target, p)
	}
	tmp := tmpName(r, "link")
	if err := t.root.Symlink(target, tmp); err != nil {
		return err
	}
	if err := t.root.Rename(tmp, r); err != nil {
		_ = t.root.Remove(tmp)
		return err
	}
	return nil
}

// writeCopy copies the file s to a temporary file beside dst, with mode
// and the owner of old (if any), and renames it over dst.
func (t *tree) writeCopy(s, dst string, mode fs.FileMode, old fs.FileInfo) error {
	r := t.rel(dst)
	if r == "" {
		return writeCopy(s, dst, mode, old)
	}
	in, err := t.sopen(s)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp := tmpName(r, "copy")
	out, err := t.root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	defer t.root.Remove(tmp) // no-op once renamed
	_, werr := io.Copy(out, in)
	// Owner first: a chown clears setuid and setgid, even root's.
	if err := errors.Join(werr, chownLike(out, old), out.Chmod(mode), out.Close()); err != nil {
		return err
	}
	return t.root.Rename(tmp, r)
}

// chownLike gives f the owner and group of old, if there is an old file
// and the process may.
func chownLike(f *os.File, old fs.FileInfo) error {
	if old == nil {
		return nil
	}
	st, ok := old.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	if err := f.Chown(int(st.Uid), int(st.Gid)); err != nil && !errors.Is(err, fs.ErrPermission) {
		return err
	}
	return nil
}

// checkResolvedOverlap refuses a source and a path that overlap once their
// symlinks are resolved (Validate has refused a lexical overlap): a copy
// into itself never ends, and a purge of the path would remove the source.
func checkResolvedOverlap(src, dst string) error {
	rs, err := filepath.EvalSymlinks(src)
	if err != nil {
		return fmt.Errorf("source: %w", err)
	}
	rd, err := resolveExisting(dst)
	if err != nil {
		return err
	}
	if rs == rd || within(rs, rd) || within(rd, rs) {
		return fmt.Errorf("source: %s (%s once its symlinks are resolved) and path %s (%s) overlap; "+
			"a copy into or out of itself never ends, and a purge would remove the source", src, rs, dst, rd)
	}
	return nil
}

// resolveExisting resolves the symlinks of the longest existing prefix of
// p and appends the rest.
func resolveExisting(p string) (string, error) {
	rest := ""
	for {
		r, err := filepath.EvalSymlinks(p)
		if err == nil {
			return filepath.Join(r, rest), nil
		}
		if !errors.Is(err, fs.ErrNotExist) || p == filepath.Dir(p) {
			return "", err
		}
		rest = filepath.Join(filepath.Base(p), rest)
		p = filepath.Dir(p)
	}
}
