package resources

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/graftcm/graft/engine"
	"github.com/graftcm/graft/internal/fswatch"
)

// File states.
const (
	stateExists = "exists"
	stateAbsent = "absent"
)

// File manages a file or directory: whether it exists, its content, mode and
// ownership. A path ending in "/" is a directory. Missing parent directories
// are created (mode 0755). Content is replaced atomically (a temporary file
// renamed over the old one), keeping the old mode and owner unless those are
// managed too.
type File struct {
	// Path is the absolute path; it defaults to the resource name. A path
	// whose last element is "." or ".." is refused as ambiguous, and / can
	// only be declared a directory, whose mode, owner and group are
	// managed: it is never removed or replaced.
	Path string `yaml:"path"`
	// Content is the file's content; nil leaves it unmanaged.
	Content *string `yaml:"content"`
	// State is "exists", "absent" or empty, the default. Empty manages
	// existence only when Content is set (then the file must exist);
	// without Content, mode, owner and group apply only if the path exists.
	// With "absent", Content, Mode, Owner and Group are accepted, as mgmt
	// accepts them, and ignored (see IgnoredParams).
	State string `yaml:"state"`
	// Mode is an octal mode ("0644") or symbolic clauses ("u=rw,go=r").
	Mode string `yaml:"mode"`
	// Owner and Group are names or numeric IDs.
	Owner string `yaml:"owner"`
	Group string `yaml:"group"`
	// Force allows replacing a file by a directory or the other way round
	// (and a symlink by either), and, with state absent, removing a
	// directory that is not empty, with everything in it, or that the graph
	// declares as a file. Without it graft refuses, naming the path.
	Force bool `yaml:"force"`

	// Dirname and Basename override the directory part (ending in /) and
	// the last element of the path, as mgmt's collect uses them.
	Dirname  string `yaml:"dirname"`
	Basename string `yaml:"basename"`
	// Source is an absolute path copied to the path: a file, or with a
	// trailing / a directory tree (which needs Recurse). With Symlink it
	// is instead the target the link points to.
	Source string `yaml:"source"`
	// Fragments are absolute paths whose contents, concatenated in order,
	// are the file's content; one ending in / stands for the regular files
	// directly in that directory, in name order.
	Fragments []string `yaml:"fragments"`
	// Recurse copies a source directory tree, and is needed by Purge.
	Recurse bool `yaml:"recurse"`
	// Purge removes every entry under the directory that neither the
	// source nor another file resource of the graph accounts for.
	Purge bool `yaml:"purge"`
	// Symlink makes the path a symbolic link to Source.
	Symlink bool `yaml:"symlink"`

	name    string
	hub     *fswatch.Hub
	managed *managedPaths
	rt      *engine.Runtime
	mode    modeSpec
	want    *string // the content CheckApply is bringing about, if managed
}

func (f *File) path() string { return f.fullPath() }

func (f *File) isDir() bool { return strings.HasSuffix(f.path(), "/") }

// wantExists reports whether the file must exist.
func (f *File) wantExists() bool {
	return f.State == stateExists || (f.State == "" && (f.Content != nil || f.Source != "" || len(f.Fragments) > 0))
}

// Validate checks the parameters. It accepts what mgmt's file resource
// accepts, except what could only fail or flap at run time (a mode above
// 7777), is ambiguous (a path ending in "." or "..") or is too dangerous to
// allow (removing or replacing /).
func (f *File) Validate() error {
	p := f.path()
	if !filepath.IsAbs(p) {
		return engine.ParamErrorf("path", "%q is not absolute", p)
	}
	switch f.State {
	case "", stateExists, stateAbsent:
	default:
		return engine.ParamErrorf("state", "%q is not one of exists, absent or empty", f.State)
	}
	if err := checkLastElement(p); err != nil {
		return err
	}
	// A path that cleans to / now ends in "/": it is a directory, which
	// cannot have content (below). It is only ever kept.
	if filepath.Clean(p) == "/" {
		switch {
		case f.State == stateAbsent:
			return engine.ParamErrorf("state", "refusing to remove /")
		case f.Force:
			return engine.ParamErrorf("force", "/ is never removed or replaced; remove force")
		}
	}
	if f.isDir() && f.Content != nil {
		return engine.ParamErrorf("content", "%q is a directory (it ends in /) and cannot have content", p)
	}
	if err := f.validateSources(); err != nil {
		return err
	}
	if _, err := parseMode(f.Mode); err != nil {
		return err
	}
	f.managed.add(f) // kept by purges from now: see managedPaths
	return nil
}

// checkLastElement refuses a path whose last element is "." or "..": it
// names a directory, yet does not end in "/", which is how a graph declares
// one, so whether a file or a directory is meant is unclear, and applying
// it as a file would replace the directory ("/etc/." with force would
// replace /etc).
func checkLastElement(p string) error {
	if strings.HasSuffix(p, "/") {
		return nil
	}
	last := p[strings.LastIndexByte(p, '/')+1:]
	if last != "." && last != ".." {
		return nil
	}
	clean := filepath.Clean(p)
	if clean == "/" {
		return engine.ParamErrorf("path", "%q ends in %q; write the path plainly: \"/\"", p, last)
	}
	return engine.ParamErrorf("path", "%q ends in %q; write the path plainly: %q for a directory, %q for a file",
		p, last, clean+"/", clean)
}

// removeAll removes p with everything under it, but never /: Validate
// refuses every declaration that could lead here with /, and this is the
// last line of defence. Nor a directory that is, or holds, a mount point
// (see noMountIn).
func removeAll(p string) error {
	if filepath.Clean(p) == "/" {
		return errors.New("refusing to remove /")
	}
	if err := noMountIn(p); err != nil {
		return err
	}
	return os.RemoveAll(p)
}

// IgnoredParams names the parameters that state absent makes meaningless,
// each with the reason. mgmt accepts them, and so does graft, which ignores
// them; the graph loader warns about each one.
func (f *File) IgnoredParams() map[string]string {
	if f.Symlink && f.State != stateAbsent && f.Mode != "" {
		return map[string]string{"mode": "a symlink has no mode of its own; its target's is not managed"}
	}
	if f.State != stateAbsent {
		return nil
	}
	const why = "state is absent: the path is removed, so there is nothing to apply it to"
	ignored := map[string]string{}
	for key, set := range map[string]bool{
		"content": f.Content != nil, "mode": f.Mode != "", "owner": f.Owner != "", "group": f.Group != "",
	} {
		if set {
			ignored[key] = why
		}
	}
	if len(ignored) == 0 {
		return nil
	}
	return ignored
}

// Init keeps the runtime and parses the mode.
func (f *File) Init(rt *engine.Runtime) error {
	f.rt = rt
	f.managed.add(f)
	m, err := parseMode(f.Mode)
	if err != nil {
		return err
	}
	f.mode = m
	return nil
}

// Cleanup withdraws the path from those that purges keep.
func (f *File) Cleanup() error {
	f.managed.remove(f)
	return nil
}

// Watch reports every change to the path or to a missing parent of it.
func (f *File) Watch(ctx context.Context) error {
	if f.hub == nil {
		return errors.New("file: no file watcher configured")
	}
	cancel, err := f.hub.Watch(filepath.Clean(f.path()), f.rt.Event)
	if err != nil {
		return err
	}
	defer cancel()
	if f.watchesTrees() {
		return f.watchTrees(ctx)
	}
	for _, p := range f.inputFiles() {
		cancel, err := f.hub.Watch(p, f.rt.Event)
		if err != nil {
			return err
		}
		defer cancel()
	}
	f.rt.Running()
	<-ctx.Done()
	return nil
}

// CheckApply brings the path to the declared state. With apply false it
// changes nothing and logs, in one line, what it would change.
func (f *File) CheckApply(ctx context.Context, apply bool) (bool, error) {
	p := filepath.Clean(f.path())
	if f.Symlink {
		return f.checkSymlink(p, apply)
	}
	want, err := f.content()
	if err != nil {
		return false, err
	}
	f.want = want
	fi, err := os.Lstat(p)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return false, err
	}
	exists := err == nil

	if f.State == stateAbsent {
		return f.checkAbsent(p, fi, exists, apply)
	}
	if !exists && !f.wantExists() {
		return true, nil // nothing to manage on a path that need not exist
	}
	if exists && !f.rightType(fi) && !f.Force {
		return false, &forceError{fmt.Sprintf("%s is a %s but the graph declares a %s; set force: true to replace it",
			p, describe(fi), f.kindName())}
	}
	if f.Source != "" || f.Purge {
		return f.checkTree(ctx, p, fi, exists, apply)
	}
	if !apply {
		return f.preview(p, fi, exists)
	}

	checkOK := true
	if exists && !f.rightType(fi) {
		f.rt.Logger.Info("replacing", "path", p, "was", describe(fi))
		if err := removeAll(p); err != nil {
			return false, err
		}
		exists = false
	}
	if !exists {
		if err := f.create(p); err != nil {
			return false, err
		}
		checkOK = false
	} else if f.want != nil {
		same, err := sameContent(p, fi.Size(), *f.want)
		if err != nil {
			return false, err
		}
		if !same {
			f.rt.Logger.Info("writing content", "path", p)
			if err := f.replace(p, fi); err != nil {
				return false, err
			}
			checkOK = false
		}
	}
	ok, err := f.fixAttrs(p)
	return checkOK && ok, err
}

// checkAbsent removes the path if it exists. A directory that is not empty
// is removed only with force, and so is a directory the graph declares as a
// file.
func (f *File) checkAbsent(p string, fi fs.FileInfo, exists, apply bool) (bool, error) {
	if !exists {
		return true, nil
	}
	if fi.IsDir() && !f.Force {
		if !f.isDir() {
			return false, &forceError{fmt.Sprintf("%s is a directory but the graph declares a file; set force: true to remove it", p)}
		}
		empty, err := dirIsEmpty(p)
		if err != nil {
			return false, err
		}
		if !empty {
			return false, &forceError{fmt.Sprintf("%s is a directory that is not empty; set force: true to remove it with everything in it", p)}
		}
	}
	if !apply {
		f.rt.Logger.Info("would change", "path", p, "action", "remove", "was", describe(fi))
		return false, nil
	}
	f.rt.Logger.Info("removing", "path", p, "was", describe(fi))
	if f.Force {
		return false, removeAll(p)
	}
	// Remove refuses a directory that gained an entry since it was read.
	return false, os.Remove(p)
}

// dirIsEmpty reports whether the directory at p has no entries.
func dirIsEmpty(p string) (bool, error) {
	d, err := os.Open(p)
	if err != nil {
		return false, err
	}
	defer d.Close()
	_, err = d.Readdirnames(1)
	if errors.Is(err, io.EOF) {
		return true, nil
	}
	return false, err
}

func (f *File) rightType(fi fs.FileInfo) bool {
	if f.isDir() {
		return fi.IsDir()
	}
	return fi.Mode().IsRegular()
}

func (f *File) kindName() string {
	if f.isDir() {
		return "directory"
	}
	return "file"
}

func describe(fi fs.FileInfo) string {
	switch {
	case fi.IsDir():
		return "directory"
	case fi.Mode()&fs.ModeSymlink != 0:
		return "symlink"
	case fi.Mode().IsRegular():
		return "file"
	}
	return "special file"
}

// create makes the missing file or directory, and its parents.
func (f *File) create(p string) error {
	parent := filepath.Dir(p)
	if _, err := os.Stat(parent); errors.Is(err, fs.ErrNotExist) {
		f.rt.Logger.Info("creating parent directories", "path", parent)
		if err := os.MkdirAll(parent, 0o755); err != nil {
			return err
		}
	}
	if f.isDir() {
		f.rt.Logger.Info("creating directory", "path", p)
		return os.Mkdir(p, f.mode.apply(0o755))
	}
	f.rt.Logger.Info("creating file", "path", p)
	return f.replace(p, nil)
}

// replace writes the content to a temporary file beside p and renames it
// over p, so readers see the old file or the new one, never a mix. The new
// file gets the managed mode, or the old file's, or 0644.
func (f *File) replace(p string, old fs.FileInfo) error {
	content := ""
	if f.want != nil {
		content = *f.want
	}
	tmp, err := os.CreateTemp(filepath.Dir(p), "."+filepath.Base(p)+".graft-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // no-op once renamed
	mode := fs.FileMode(0o644)
	if old != nil {
		mode = permBits(old.Mode())
	}
	mode = f.mode.apply(mode)
	_, werr := io.WriteString(tmp, content)
	cerr := tmp.Close()
	if err := errors.Join(werr, cerr); err != nil {
		return err
	}
	if err := os.Chmod(tmp.Name(), mode); err != nil {
		return err
	}
	if old != nil {
		if st, ok := old.Sys().(*syscall.Stat_t); ok {
			if err := os.Lchown(tmp.Name(), int(st.Uid), int(st.Gid)); err != nil && !errors.Is(err, fs.ErrPermission) {
				return err
			}
		}
	}
	return os.Rename(tmp.Name(), p)
}

// attrDiff is how a path's mode and ownership differ from the declared
// ones.
type attrDiff struct {
	mode     bool        // the mode differs
	from, to fs.FileMode // the current and declared mode, if it differs
	uid, gid int         // the declared owner and group where they differ, else -1
	curUID   uint32      // the current owner and group
	curGID   uint32
}

func (d attrDiff) none() bool { return !d.mode && d.uid == -1 && d.gid == -1 }

// diffAttrs compares fi's mode and ownership with the declared ones.
func (f *File) diffAttrs(fi fs.FileInfo) (attrDiff, error) {
	d := attrDiff{uid: -1, gid: -1}
	if f.mode.set {
		cur := permBits(fi.Mode())
		if want := f.mode.apply(cur); want != cur {
			d.mode, d.from, d.to = true, cur, want
		}
	}
	if f.Owner == "" && f.Group == "" {
		return d, nil
	}
	st, isUnix := fi.Sys().(*syscall.Stat_t)
	if !isUnix {
		return d, errors.New("owner and group need a Unix system")
	}
	d.curUID, d.curGID = st.Uid, st.Gid
	if f.Owner != "" {
		uid, err := lookupID(f.Owner, "owner")
		if err != nil {
			return d, err
		}
		if uint32(uid) != st.Uid {
			d.uid = uid
		}
	}
	if f.Group != "" {
		gid, err := lookupID(f.Group, "group")
		if err != nil {
			return d, err
		}
		if uint32(gid) != st.Gid {
			d.gid = gid
		}
	}
	return d, nil
}

// fixAttrs brings mode and ownership in line, reporting whether they were.
func (f *File) fixAttrs(p string) (bool, error) {
	fi, err := os.Lstat(p)
	if err != nil {
		return false, err
	}
	d, err := f.diffAttrs(fi)
	if err != nil {
		return false, err
	}
	if d.none() {
		return true, nil
	}
	if d.mode {
		f.rt.Logger.Info("changing mode", "path", p, "from", d.from.String(), "to", d.to.String())
		if err := os.Chmod(p, d.to); err != nil {
			return false, err
		}
	}
	if d.uid == -1 && d.gid == -1 {
		return false, nil
	}
	f.rt.Logger.Info("changing owner", "path", p, "owner", f.Owner, "group", f.Group)
	// Changing the owner clears setuid/setgid bits; put a managed mode back.
	if err := os.Lchown(p, d.uid, d.gid); err != nil {
		return false, err
	}
	if f.mode.set {
		if _, err := f.fixAttrs(p); err != nil {
			return false, err
		}
	}
	return false, nil
}

// lookupID resolves a user or group name, or a numeric ID.
func lookupID(name, what string) (int, error) {
	if n, err := strconv.Atoi(name); err == nil && n >= 0 {
		return n, nil
	}
	var idStr string
	if what == "owner" {
		u, err := user.Lookup(name)
		if err != nil {
			return 0, fmt.Errorf("owner: %w", err)
		}
		idStr = u.Uid
	} else {
		g, err := user.LookupGroup(name)
		if err != nil {
			return 0, fmt.Errorf("group: %w", err)
		}
		idStr = g.Gid
	}
	return strconv.Atoi(idStr)
}

// sameContent reports whether the file at p holds exactly want, reading it
// in chunks so large files are not loaded whole.
func sameContent(p string, size int64, want string) (bool, error) {
	if size != int64(len(want)) {
		return false, nil
	}
	fh, err := os.Open(p)
	if err != nil {
		return false, err
	}
	defer fh.Close()
	buf := make([]byte, 32<<10)
	rest := []byte(want)
	for {
		n, err := fh.Read(buf)
		if n > len(rest) || !bytes.Equal(buf[:n], rest[:n]) {
			return false, nil
		}
		rest = rest[n:]
		if errors.Is(err, io.EOF) {
			return len(rest) == 0, nil
		}
		if err != nil {
			return false, err
		}
	}
}

// Provides names the path this resource manages, for automatic edges.
func (f *File) Provides() []string {
	self, _ := engine.PathUIDs(f.path())
	return []string{self}
}

// Requires names the parent directories of the path, the source and the
// fragments: a file resource that manages one of them is applied first. It
// names the path itself too, so that a pkg resource whose package owns the
// path is applied first.
func (f *File) Requires() []string {
	self, parents := engine.PathUIDs(f.path())
	reqs := append(parents, self)
	var inputs []string
	if f.Source != "" && filepath.IsAbs(f.Source) {
		inputs = append(inputs, f.Source)
	}
	for _, p := range append(inputs, f.Fragments...) {
		src, _ := engine.PathUIDs(p)
		reqs = append(reqs, src)
	}
	return append(reqs, ownerUIDs(f.Owner, f.Group)...)
}

// ownerUIDs names the user and group a file is owned by, by name or by id,
// so that the user and group resources that make them are applied first.
func ownerUIDs(owner, group string) []string {
	var out []string
	if owner != "" {
		if id, err := strconv.ParseUint(owner, 10, 32); err == nil {
			out = append(out, "uid:"+fmtAccountID(uint32(id)))
		} else {
			out = append(out, "user:"+owner)
		}
	}
	if group != "" {
		if id, err := strconv.ParseUint(group, 10, 32); err == nil {
			out = append(out, "gid:"+fmtAccountID(uint32(id)))
		} else {
			out = append(out, "group:"+group)
		}
	}
	return out
}
