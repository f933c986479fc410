package resources

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// tree is one CheckApply of a file with a source or a purge: it walks the
// source and the destination together, never following a symlink in
// either, and records whether everything was already in its state.
type tree struct {
	f     *File
	ctx   context.Context
	apply bool
	ok    bool
	keep  keepSet

	root     *os.Root // the open root directory of a tree, once there is one
	rootPath string
	src      *os.Root // the open source directory of a tree copy, once there is one
	srcPath  string
}

// checkTree is CheckApply for a path with Source (not a symlink) or Purge.
// The path's type has been checked against force already.
func (f *File) checkTree(ctx context.Context, p string, fi fs.FileInfo, exists, apply bool) (bool, error) {
	src := ""
	if f.Source != "" {
		src = filepath.Clean(f.Source)
		sfi, err := os.Stat(src) // the graph names the source: follow a link there
		if err != nil {
			return false, fmt.Errorf("source: %w", err)
		}
		if sfi.IsDir() != f.sourceIsDir() || (!sfi.IsDir() && !sfi.Mode().IsRegular()) {
			return false, fmt.Errorf("source: %s is a %s but the graph declares a %s", src, describe(sfi), f.kindName())
		}
		if err := checkResolvedOverlap(src, p); err != nil {
			return false, err
		}
	}
	if !exists && !f.wantExists() {
		return true, nil // a purge of a directory that is not there
	}
	t := &tree{f: f, ctx: ctx, apply: apply, ok: true}
	defer t.close()
	if f.Purge {
		t.keep = f.managed.keep(p, f)
	}
	if !f.isDir() {
		if err := t.copyFile(src, p, fi, exists, true); err != nil {
			return false, err
		}
	} else if err := t.dir(src, p, fi, exists); err != nil {
		return false, err
	}
	if !exists && !apply {
		return false, nil
	}
	ok, err := t.attrs(p)
	return t.ok && ok, err
}

// attrs checks or fixes the root's mode and ownership.
func (t *tree) attrs(p string) (bool, error) {
	if t.apply {
		return t.f.fixAttrs(p)
	}
	fi, err := os.Lstat(p)
	if err != nil {
		return false, err
	}
	changes, err := t.f.attrChanges(fi)
	if err != nil || len(changes) == 0 {
		return err == nil, err
	}
	t.f.rt.Logger.Info("would change", append([]any{"path", p, "action", "update"}, changes...)...)
	return false, nil
}

// change logs a change, or with apply false what it would be, and marks the
// tree as not in its state. It reports whether to make the change.
func (t *tree) change(msg, p, action string, attrs ...any) bool {
	t.ok = false
	if !t.apply {
		t.f.rt.Logger.Info("would change", append([]any{"path", p, "action", action}, attrs...)...)
		return false
	}
	t.f.rt.Logger.Info(msg, append([]any{"path", p}, attrs...)...)
	return true
}

// clear removes dst, found of the wrong type, if force allows it.
func (t *tree) clear(dst string, fi fs.FileInfo, want string) (bool, error) {
	if !t.f.Force {
		return false, &forceError{fmt.Sprintf("%s is a %s but the source makes it a %s; set force: true to replace it",
			dst, describe(fi), want)}
	}
	if fi.IsDir() {
		if err := t.checkNoMount(dst); err != nil {
			return false, err
		}
	}
	if !t.change("replacing", dst, "replace", "was", describe(fi), "kind", want) {
		return false, nil
	}
	return true, t.removeAll(dst)
}

// dir brings the directory dst in line with the source directory src (""
// for none): entries copied, and with Purge the rest removed.
func (t *tree) dir(src, dst string, fi fs.FileInfo, exists bool) error {
	if err := t.ctx.Err(); err != nil {
		return err
	}
	if exists && !fi.IsDir() {
		done, err := t.clear(dst, fi, "directory")
		if err != nil || !done {
			return err
		}
		exists = false
	}
	if !exists {
		mode := t.dirMode(src, dst)
		if !t.change("creating directory", dst, "create", "kind", "directory", "from", src) {
			return nil // nothing under it to compare with
		}
		if err := t.mkdirAll(dst, mode); err != nil {
			return err
		}
	} else if src != "" && dst != filepath.Clean(t.f.path()) {
		if err := t.perm(src, dst, fi); err != nil {
			return err
		}
	}
	if t.root == nil {
		if err := t.openRoot(dst); err != nil {
			return err
		}
	}
	if src != "" && t.src == nil {
		if err := t.openSource(src); err != nil {
			return fmt.Errorf("source: %w", err)
		}
	}
	return t.entries(src, dst)
}

// dirMode is the mode of a directory to create: the source's, or 0755
// (then the managed mode for the root).
func (t *tree) dirMode(src, dst string) fs.FileMode {
	mode := fs.FileMode(0o755)
	if src != "" {
		if sfi, err := t.sstat(src); err == nil {
			mode = permBits(sfi.Mode())
		}
	}
	if dst == filepath.Clean(t.f.path()) {
		mode = t.f.mode.apply(mode)
	}
	return mode
}

// entries syncs the entries of src into dst, then purges.
func (t *tree) entries(src, dst string) error {
	var srcEntries []fs.DirEntry
	if src != "" {
		var err error
		if srcEntries, err = t.sreadDir(src); err != nil {
			return fmt.Errorf("source: %w", err)
		}
	}
	inSource := map[string]bool{}
	for _, e := range srcEntries {
		inSource[e.Name()] = true
		if err := t.entry(filepath.Join(src, e.Name()), filepath.Join(dst, e.Name()), e.Type()); err != nil {
			return err
		}
	}
	if !t.f.Purge {
		return nil
	}
	dstEntries, err := t.readDir(dst)
	if err != nil {
		return err
	}
	var refused error
	for _, e := range dstEntries {
		if inSource[e.Name()] {
			continue
		}
		err := t.purge(filepath.Join(dst, e.Name()), e.Type())
		if errors.Is(err, ErrMountPoint) {
			refused = errors.Join(refused, err) // the other entries are still purged
			continue
		}
		if err != nil {
			return err
		}
	}
	return refused
}

// entry brings dst in line with the source entry s of the given type.
func (t *tree) entry(s, dst string, typ fs.FileMode) error {
	fi, err := t.lstat(dst)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	exists := err == nil
	switch {
	case typ.IsDir():
		return t.dir(s, dst, fi, exists)
	case typ.IsRegular():
		return t.copyFile(s, dst, fi, exists, false)
	case typ&fs.ModeSymlink != 0:
		return t.link(s, dst, fi, exists)
	}
	t.f.rt.Logger.Warn("not copying a special file", "path", s)
	return nil
}

// purge removes q, an entry of the destination that the source lacks,
// unless another resource manages it; a directory on the way to one is
// purged inside instead.
func (t *tree) purge(q string, typ fs.FileMode) error {
	if t.keep.managed[q] {
		return nil
	}
	if t.keep.onWay[q] && typ.IsDir() {
		return t.entries("", q)
	}
	if filepath.Clean(q) == "/" || !within(q, t.f.path()) {
		return fmt.Errorf("purge: refusing to remove %s", q) // never reached: the last line of defence
	}
	if typ.IsDir() {
		if err := t.checkNoMount(q); err != nil {
			return err
		}
	}
	if !t.change("removing", q, "remove", "was", typeName(typ)) {
		return nil
	}
	return t.removeAll(q) // removes a symlink itself, never what it points to
}

func typeName(typ fs.FileMode) string {
	switch {
	case typ.IsDir():
		return "directory"
	case typ&fs.ModeSymlink != 0:
		return "symlink"
	case typ.IsRegular():
		return "file"
	}
	return "special file"
}

// link makes dst a symlink with the target of the source symlink s.
func (t *tree) link(s, dst string, fi fs.FileInfo, exists bool) error {
	target, err := t.sreadlink(s)
	if err != nil {
		return err
	}
	if exists && fi.Mode()&fs.ModeSymlink != 0 {
		if cur, err := t.readlink(dst); err == nil && cur == target {
			return nil
		}
	} else if exists {
		if done, err := t.clear(dst, fi, "symlink"); err != nil || !done {
			return err
		}
	}
	if !t.change("linking", dst, "link", "target", target) {
		return nil
	}
	return t.symlink(target, dst)
}

// copyFile brings dst to the content of the source file s: for an entry
// of a tree also to its permission bits, for the root file to the managed
// mode (fixed afterwards). With no source (a purge of a missing root)
// there is nothing to copy.
func (t *tree) copyFile(s, dst string, fi fs.FileInfo, exists, root bool) error {
	sfi, err := t.sstat(s)
	if err != nil {
		return fmt.Errorf("source: %w", err)
	}
	if exists && !fi.Mode().IsRegular() {
		done, err := t.clear(dst, fi, "file")
		if err != nil || !done {
			return err
		}
		exists = false
	}
	if exists {
		same, err := t.sameFiles(s, dst, sfi.Size(), fi.Size())
		if err != nil {
			return err
		}
		if same {
			if root {
				return nil
			}
			return t.perm(s, dst, fi)
		}
	}
	uid, gid := os.Geteuid(), os.Getegid() // a new file's owner
	if exists {
		uid, gid = ownerOf(fi)
	}
	mode := copyPerm(sfi, uid, gid)
	if exists && root {
		mode = permBits(fi.Mode())
	}
	if root {
		mode = t.f.mode.apply(mode)
	}
	if !t.change("copying", dst, "copy", "from", s, "bytes", sfi.Size()) {
		return nil
	}
	if !exists {
		if err := t.mkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		fi = nil
	}
	return t.writeCopy(s, dst, mode, fi)
}

// perm brings the permission bits of dst, inside a tree, to those of the
// source entry s.
func (t *tree) perm(s string, dst string, fi fs.FileInfo) error {
	sfi, err := t.sstat(s)
	if err != nil {
		return err
	}
	uid, gid := ownerOf(fi)
	want, cur := copyPerm(sfi, uid, gid), permBits(fi.Mode())
	if want == cur {
		return nil
	}
	if !t.change("changing mode", dst, "update", "mode", octal(cur)+" -> "+octal(want)) {
		return nil
	}
	return t.chmod(dst, want)
}

// writeCopy copies the file s to a temporary file beside dst, with mode
// and the owner of old (if any), and renames it over dst.
func writeCopy(s, dst string, mode fs.FileMode, old fs.FileInfo) error {
	in, err := regularOnly(os.OpenFile(s, os.O_RDONLY|syscall.O_NONBLOCK, 0))
	if err != nil {
		return err
	}
	defer in.Close()
	tmp, err := os.CreateTemp(filepath.Dir(dst), "."+filepath.Base(dst)+".graft-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // no-op once renamed
	_, werr := io.Copy(tmp, in)
	cerr := tmp.Close()
	if err := errors.Join(werr, cerr); err != nil {
		return err
	}
	// Owner first: a chown clears setuid and setgid, even root's.
	if old != nil {
		if st, ok := old.Sys().(*syscall.Stat_t); ok {
			if err := os.Lchown(tmp.Name(), int(st.Uid), int(st.Gid)); err != nil && !errors.Is(err, fs.ErrPermission) {
				return err
			}
		}
	}
	if err := os.Chmod(tmp.Name(), mode); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), dst)
}

// sameFiles reports whether the files a and b have the same bytes.
func (t *tree) sameFiles(a, b string, sizeA, sizeB int64) (bool, error) {
	if sizeA != sizeB {
		return false, nil
	}
	fa, err := t.sopen(a)
	if err != nil {
		return false, err
	}
	defer fa.Close()
	fb, err := t.open(b)
	if err != nil {
		return false, err
	}
	defer fb.Close()
	bufA, bufB := make([]byte, 32<<10), make([]byte, 32<<10)
	for {
		na, errA := io.ReadFull(fa, bufA)
		nb, errB := io.ReadFull(fb, bufB)
		if na != nb || !bytes.Equal(bufA[:na], bufB[:nb]) {
			return false, nil
		}
		endA := errors.Is(errA, io.EOF) || errors.Is(errA, io.ErrUnexpectedEOF)
		endB := errors.Is(errB, io.EOF) || errors.Is(errB, io.ErrUnexpectedEOF)
		if endA || endB {
			return endA && endB, nil
		}
		if err := errors.Join(errA, errB); err != nil {
			return false, err
		}
	}
}

// copyPerm returns the permission bits a copy of the source entry sfi
// owned by uid and gid gets: the source's, except that a regular file
// loses setuid unless it keeps the source's owner, and setgid unless it
// keeps the source's group. Else a setuid program of an ordinary user,
// copied by graft as root, would run as root.
func copyPerm(sfi fs.FileInfo, uid, gid int) fs.FileMode {
	m := permBits(sfi.Mode())
	if !sfi.Mode().IsRegular() {
		return m
	}
	su, sg := ownerOf(sfi)
	if su != uid {
		m &^= fs.ModeSetuid
	}
	if sg != gid {
		m &^= fs.ModeSetgid
	}
	return m
}

// ownerOf returns the owner and group of fi, or -1 for each if unknown.
func ownerOf(fi fs.FileInfo) (uid, gid int) {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return int(st.Uid), int(st.Gid)
	}
	return -1, -1
}
