package resources

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
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
		return readFragment(b, frag, 0)
	}
	entries, err := os.ReadDir(frag) // sorted by name
	if err != nil {
		return err
	}
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		// Not followed if it became a symlink since it was listed.
		if err := readFragment(b, filepath.Join(frag, e.Name()), syscall.O_NOFOLLOW); err != nil {
			return err
		}
	}
	return nil
}

// readFragment appends the regular file p. It opens p without blocking and
// refuses anything else: a FIFO would hold the resource until a writer
// came, and a device could be endless.
func readFragment(b *strings.Builder, p string, flags int) error {
	fd, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NONBLOCK|flags, 0)
	if err != nil {
		return err
	}
	defer fd.Close()
	fi, err := fd.Stat()
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s is a %s, not a regular file", p, describe(fi))
	}
	_, err = io.Copy(b, fd)
	return err
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
