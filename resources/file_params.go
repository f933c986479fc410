package resources

import (
	"errors"
	"path/filepath"
	"strings"

	"github.com/graftcm/graft/engine"
)

// fullPath is the declared path with the Dirname and Basename overrides
// applied, as mgmt applies them: Dirname (ending in "/") replaces the
// directory part, Basename the last element (with its trailing "/" for a
// directory). Collecting a file sets Dirname when the exported file has
// one, so that the collect pattern wins over it.
func (f *File) fullPath() string {
	p := f.Path
	if p == "" {
		p = f.name
	}
	if f.Dirname == "" && f.Basename == "" {
		return p
	}
	dir, base := splitDirBase(p)
	if f.Dirname != "" {
		dir = f.Dirname
	}
	if f.Basename != "" {
		base = f.Basename
	}
	return dir + base
}

// splitDirBase splits p after the last "/" that is not its final byte:
// "/a/b" gives "/a/" and "b"; "/a/b/" gives "/a/" and "b/".
func splitDirBase(p string) (dir, base string) {
	trimmed := strings.TrimSuffix(p, "/")
	i := strings.LastIndexByte(trimmed, '/')
	return p[:i+1], p[i+1:]
}

// sourceIsDir reports whether Source names a directory (ends in "/").
func (f *File) sourceIsDir() bool { return strings.HasSuffix(f.Source, "/") }

// validateSources checks Dirname, Basename, Source, Fragments, Recurse,
// Purge and Symlink, and how they combine, by mgmt's rules; and refuses,
// beyond them, a purge of / and a source inside the path it is copied to.
func (f *File) validateSources() error {
	if f.Dirname != "" && !strings.HasPrefix(f.Dirname, "/") {
		return engine.ParamErrorf("dirname", "%q is not absolute", f.Dirname)
	}
	if f.Dirname != "" && !strings.HasSuffix(f.Dirname, "/") {
		return engine.ParamErrorf("dirname", "%q must end in /", f.Dirname)
	}
	if strings.HasPrefix(f.Basename, "/") {
		return engine.ParamErrorf("basename", "%q must not start with /", f.Basename)
	}
	if err := f.validateExclusive(); err != nil {
		return err
	}
	if f.Symlink {
		return f.validateSymlink()
	}
	if err := f.validateSource(); err != nil {
		return err
	}
	if f.Purge {
		switch {
		case !f.isDir():
			return engine.ParamErrorf("purge", "%q is not a directory (it does not end in /)", f.path())
		case !f.Recurse:
			return engine.ParamErrorf("purge", "needs recurse: true")
		case filepath.Clean(f.path()) == "/":
			return engine.ParamErrorf("purge", "refusing to purge /")
		}
	}
	return f.validateFragments()
}

// validateExclusive refuses combinations that say two things at once.
func (f *File) validateExclusive() error {
	set := 0
	for _, on := range []bool{f.Content != nil, f.Source != "", len(f.Fragments) > 0} {
		if on {
			set++
		}
	}
	if set > 1 {
		return errors.New("content, source, fragments: set at most one of them")
	}
	if f.State == stateAbsent && f.Source != "" && !f.Symlink {
		return engine.ParamErrorf("source", "cannot copy to a path declared absent; remove source or state")
	}
	if f.State == stateAbsent && len(f.Fragments) > 0 {
		return engine.ParamErrorf("fragments", "cannot build a path declared absent; remove fragments or state")
	}
	if f.Purge && (f.Content != nil || len(f.Fragments) > 0) {
		return engine.ParamErrorf("purge", "cannot be combined with content or fragments")
	}
	return nil
}

func (f *File) validateSymlink() error {
	switch {
	case f.Source == "" && f.State != stateAbsent:
		return engine.ParamErrorf("symlink", "needs source, the target the link points to")
	case f.isDir():
		return engine.ParamErrorf("symlink", "%q ends in / but a symlink is not a directory", f.path())
	case f.Content != nil || len(f.Fragments) > 0:
		return engine.ParamErrorf("symlink", "cannot be combined with content or fragments")
	case f.Recurse || f.Purge:
		return engine.ParamErrorf("symlink", "cannot be combined with recurse or purge")
	}
	return nil
}

func (f *File) validateSource() error {
	if f.Source == "" {
		return nil
	}
	if !filepath.IsAbs(f.Source) {
		return engine.ParamErrorf("source", "%q is not absolute", f.Source)
	}
	if f.isDir() != f.sourceIsDir() {
		return engine.ParamErrorf("source", "%q and path %q must both be directories (ending in /) or both files", f.Source, f.path())
	}
	if f.sourceIsDir() && !f.Recurse {
		return engine.ParamErrorf("source", "copying a directory needs recurse: true")
	}
	if !f.sourceIsDir() && f.Recurse {
		return engine.ParamErrorf("recurse", "cannot recurse when copying a single file")
	}
	src, dst := filepath.Clean(f.Source), filepath.Clean(f.path())
	if src == dst || within(dst, src) || within(src, dst) {
		return engine.ParamErrorf("source", "%q and path %q overlap; a copy into or out of itself never ends", f.Source, f.path())
	}
	return nil
}

func (f *File) validateFragments() error {
	for i, frag := range f.Fragments {
		if !filepath.IsAbs(frag) {
			return engine.ParamErrorf("fragments", "entry %d, %q, is not absolute", i+1, frag)
		}
		if c := filepath.Clean(frag); c == filepath.Clean(f.path()) || within(f.path(), c) {
			return engine.ParamErrorf("fragments", "entry %d, %q, holds the path %q itself", i+1, frag, f.path())
		}
	}
	if len(f.Fragments) > 0 && f.isDir() {
		return engine.ParamErrorf("fragments", "%q is a directory (it ends in /) and cannot have content", f.path())
	}
	return nil
}

// within reports whether p lies strictly under dir.
func within(p, dir string) bool {
	p, dir = filepath.Clean(p), filepath.Clean(dir)
	if dir == "/" {
		return p != "/"
	}
	return strings.HasPrefix(p, dir+"/")
}
