package resources

import (
	"path/filepath"

	"github.com/graftcm/graft/engine"
)

// Claims claims the cleaned path, so that no other resource manages it too
// ("/a/" and "/a" are one path). A file declared absent, or declared a
// regular file rather than a directory, also claims everything under its
// path: nothing can exist there while the declaration holds. So does a
// directory copied from a source directory (the copy decides everything in
// it) and a symlink (a path under it would be managed through the link). A
// purged directory without a source claims only its path: what other
// resources manage under it is exactly what the purge keeps.
func (f *File) Claims() []engine.Claim {
	c := engine.Claim{Space: "path", Name: filepath.Clean(f.path())}
	switch {
	case f.State == stateAbsent:
		c.Tree, c.Why = true, "it is declared absent"
	case f.Symlink:
		c.Tree, c.Why = true, "it is declared a symlink"
	case !f.isDir():
		c.Tree, c.Why = true, "it is declared a regular file: its path does not end in /"
	case f.Source != "":
		c.Tree, c.Why = true, "it is a copy of the directory "+f.Source
	}
	return []engine.Claim{c}
}
