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
	"github.com/graftcm/graft/fswatch"
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
	// Path is the absolute path; it defaults to the resource name.
	Path string `yaml:"path"`
	// Content is the file's content; nil leaves it unmanaged.
	Content *string `yaml:"content"`
	// State is "exists", "absent" or empty. Empty manages existence only
	// when Content is set (then the file must exist).
	State string `yaml:"state"`
	// Mode is an octal mode ("0644") or symbolic clauses ("u=rw,go=r").
	Mode string `yaml:"mode"`
	// Owner and Group are names or numeric IDs.
	Owner string `yaml:"owner"`
	Group string `yaml:"group"`
	// Force allows replacing a file by a directory or the other way round
	// (and a symlink by either), and removing a directory that the graph
	// declares as a file.
	Force bool `yaml:"force"`

	name string
	hub  *fswatch.Hub
	rt   *engine.Runtime
	mode modeSpec
}

func (f *File) path() string {
	if f.Path != "" {
		return f.Path
	}
	return f.name
}

func (f *File) isDir() bool { return strings.HasSuffix(f.path(), "/") }

// wantExists reports whether the file must exist.
func (f *File) wantExists() bool {
	return f.State == stateExists || (f.State == "" && f.Content != nil)
}

// Validate checks the parameters.
func (f *File) Validate() error {
	p := f.path()
	if !filepath.IsAbs(p) {
		return fmt.Errorf("path: %q is not absolute", p)
	}
	if filepath.Clean(p) == "/" {
		return errors.New("path: refusing to manage /")
	}
	switch f.State {
	case "", stateExists, stateAbsent:
	default:
		return fmt.Errorf("state: %q is not one of exists, absent or empty", f.State)
	}
	if f.State == stateAbsent && (f.Content != nil || f.Mode != "" || f.Owner != "" || f.Group != "") {
		return errors.New("state: absent cannot be combined with content, mode, owner or group")
	}
	if f.isDir() && f.Content != nil {
		return fmt.Errorf("content: %q is a directory (it ends in /) and cannot have content", p)
	}
	_, err := parseMode(f.Mode)
	return err
}

// Init keeps the runtime and parses the mode.
func (f *File) Init(rt *engine.Runtime) error {
	f.rt = rt
	m, err := parseMode(f.Mode)
	if err != nil {
		return err
	}
	f.mode = m
	return nil
}

// Cleanup does nothing.
func (f *File) Cleanup() error { return nil }

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
	f.rt.Running()
	<-ctx.Done()
	return nil
}

// CheckApply brings the path to the declared state.
func (f *File) CheckApply(ctx context.Context, apply bool) (bool, error) {
	p := filepath.Clean(f.path())
	fi, err := os.Lstat(p)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return false, err
	}
	exists := err == nil

	if f.State == stateAbsent {
		if !exists {
			return true, nil
		}
		if fi.IsDir() && !f.isDir() && !f.Force {
			return false, fmt.Errorf("%s is a directory but the graph declares a file; set force to remove it", p)
		}
		if !apply {
			return false, nil
		}
		f.rt.Logger.Info("removing", "path", p)
		return false, os.RemoveAll(p)
	}

	if !exists && !f.wantExists() {
		return true, nil // nothing to manage on a path that need not exist
	}
	checkOK := true
	if exists && !f.rightType(fi) {
		if !f.Force {
			return false, fmt.Errorf("%s is a %s but the graph declares a %s; set force to replace it",
				p, describe(fi), f.kindName())
		}
		if !apply {
			return false, nil
		}
		f.rt.Logger.Info("replacing", "path", p, "was", describe(fi))
		if err := os.RemoveAll(p); err != nil {
			return false, err
		}
		exists = false
	}
	if !exists {
		if !apply {
			return false, nil
		}
		if err := f.create(p); err != nil {
			return false, err
		}
		checkOK = false
	} else if f.Content != nil {
		same, err := sameContent(p, fi.Size(), *f.Content)
		if err != nil {
			return false, err
		}
		if !same {
			if !apply {
				return false, nil
			}
			f.rt.Logger.Info("writing content", "path", p)
			if err := f.replace(p, fi); err != nil {
				return false, err
			}
			checkOK = false
		}
	}
	ok, err := f.fixAttrs(p, apply)
	return checkOK && ok, err
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
	if f.Content != nil {
		content = *f.Content
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

// fixAttrs brings mode and ownership in line, reporting whether they were.
func (f *File) fixAttrs(p string, apply bool) (bool, error) {
	fi, err := os.Lstat(p)
	if err != nil {
		if !apply && errors.Is(err, fs.ErrNotExist) {
			return false, nil // would have been created
		}
		return false, err
	}
	ok := true
	if f.mode.set {
		cur := permBits(fi.Mode())
		if want := f.mode.apply(cur); want != cur {
			if !apply {
				return false, nil
			}
			f.rt.Logger.Info("changing mode", "path", p, "from", cur.String(), "to", want.String())
			if err := os.Chmod(p, want); err != nil {
				return false, err
			}
			ok = false
		}
	}
	if f.Owner == "" && f.Group == "" {
		return ok, nil
	}
	st, isUnix := fi.Sys().(*syscall.Stat_t)
	if !isUnix {
		return false, errors.New("owner and group need a Unix system")
	}
	uid, gid := -1, -1
	if f.Owner != "" {
		if uid, err = lookupID(f.Owner, "owner"); err != nil {
			return false, err
		}
		if uint32(uid) == st.Uid {
			uid = -1
		}
	}
	if f.Group != "" {
		if gid, err = lookupID(f.Group, "group"); err != nil {
			return false, err
		}
		if uint32(gid) == st.Gid {
			gid = -1
		}
	}
	if uid == -1 && gid == -1 {
		return ok, nil
	}
	if !apply {
		return false, nil
	}
	f.rt.Logger.Info("changing owner", "path", p, "owner", f.Owner, "group", f.Group)
	// Changing the owner clears setuid/setgid bits; put a managed mode back.
	if err := os.Lchown(p, uid, gid); err != nil {
		return false, err
	}
	if f.mode.set {
		if _, err := f.fixAttrs(p, true); err != nil {
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

// Requires names the parent directories of the path: a file resource that
// manages one of them is applied first.
func (f *File) Requires() []string {
	_, parents := engine.PathUIDs(f.path())
	return parents
}
