package resources

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// content returns the content the file must hold: Content, or the
// concatenation of the fragments as they are now, or nil when the content
// is not managed.
func (f *File) content() (*string, error) {
	if len(f.Fragments) == 0 {
		return f.Content, nil
	}
	var b strings.Builder
	for i, frag := range f.Fragments {
		if err := appendFragment(&b, frag); err != nil {
			return nil, fmt.Errorf("fragments[%d]: %w", i, err)
		}
	}
	s := b.String()
	return &s, nil
}

// appendFragment appends a fragment file, or each regular file directly in
// a fragment directory (one ending in /) in name order. Subdirectories and
// special files in such a directory are skipped, as are symlinks, so a
// fragment directory never reaches outside itself; a fragment named
// directly is followed if it is a symlink, since the graph names it.
func appendFragment(b *strings.Builder, frag string) error {
	if !strings.HasSuffix(frag, "/") {
		data, err := os.ReadFile(frag)
		if err != nil {
			return err
		}
		b.Write(data)
		return nil
	}
	entries, err := os.ReadDir(frag) // sorted by name
	if err != nil {
		return err
	}
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		data, err := os.ReadFile(filepath.Join(frag, e.Name()))
		if err != nil {
			return err
		}
		b.Write(data)
	}
	return nil
}

// inputFiles are the single paths the file is built from, watched besides
// the path itself: the source file and the fragments named as files.
func (f *File) inputFiles() []string {
	var out []string
	if f.Source != "" && !f.sourceIsDir() && !f.Symlink {
		out = append(out, filepath.Clean(f.Source))
	}
	for _, frag := range f.Fragments {
		if !strings.HasSuffix(frag, "/") {
			out = append(out, filepath.Clean(frag))
		}
	}
	return out
}
