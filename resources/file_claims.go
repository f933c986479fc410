package resources

import (
	"path/filepath"

	"github.com/graftcm/graft/engine"
)

// Claims claims the cleaned path, so that no other resource manages it too
// ("/a/" and "/a" are one path). A file declared absent, or declared a
// regular file rather than a directory, also claims everything under its
// path: nothing can exist there while the declaration holds.
func (f *File) Claims() []engine.Claim {
	c := engine.Claim{Space: "path", Name: filepath.Clean(f.path())}
	switch {
	case f.State == stateAbsent:
		c.Tree, c.Why = true, "it is declared absent"
	case !f.isDir():
		c.Tree, c.Why = true, "it is declared a regular file: its path does not end in /"
	}
	return []engine.Claim{c}
}
