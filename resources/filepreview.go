package resources

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"strconv"
)

// maxPreviewRead is the largest file whose lines a preview compares; for a
// larger one it reports sizes only.
const maxPreviewRead = 4 << 20

// preview is CheckApply with apply false on a path that is to exist: it
// logs one line saying what applying would change and changes nothing. It
// never logs the content itself, which may be a secret: only sizes and how
// many lines would go and come.
func (f *File) preview(p string, fi fs.FileInfo, exists bool) (bool, error) {
	if exists && !f.rightType(fi) {
		f.rt.Logger.Info("would change", append([]any{"path", p, "action", "replace", "was", describe(fi)}, f.created()...)...)
		return false, nil
	}
	if !exists {
		f.rt.Logger.Info("would change", append([]any{"path", p, "action", "create"}, f.created()...)...)
		return false, nil
	}
	var changes []any
	if f.want != nil {
		same, err := sameContent(p, fi.Size(), *f.want)
		if err != nil {
			return false, err
		}
		if !same {
			sum, err := contentChange(p, fi.Size(), *f.want)
			if err != nil {
				return false, err
			}
			changes = append(changes, "content", sum)
		}
	}
	attrs, err := f.attrChanges(fi)
	if err != nil {
		return false, err
	}
	changes = append(changes, attrs...)
	if len(changes) == 0 {
		return true, nil
	}
	f.rt.Logger.Info("would change", append([]any{"path", p, "action", "update"}, changes...)...)
	return false, nil
}

// attrChanges describes, as log attributes, how fi's mode and ownership
// differ from the declared ones.
func (f *File) attrChanges(fi fs.FileInfo) ([]any, error) {
	d, err := f.diffAttrs(fi)
	if err != nil {
		return nil, err
	}
	var changes []any
	if d.mode {
		changes = append(changes, "mode", octal(d.from)+" -> "+octal(d.to))
	}
	if d.uid != -1 {
		changes = append(changes, "owner", strconv.FormatUint(uint64(d.curUID), 10)+" -> "+strconv.Itoa(d.uid))
	}
	if d.gid != -1 {
		changes = append(changes, "group", strconv.FormatUint(uint64(d.curGID), 10)+" -> "+strconv.Itoa(d.gid))
	}
	return changes, nil
}

// created describes, as log attributes, the file or directory that
// applying would create.
func (f *File) created() []any {
	attrs := []any{"kind", f.kindName()}
	if f.want != nil {
		attrs = append(attrs, "content", fmt.Sprintf("%d bytes, %d lines", len(*f.want), countLines([]byte(*f.want))))
	}
	if f.mode.set {
		def := fs.FileMode(0o644)
		if f.isDir() {
			def = 0o755
		}
		attrs = append(attrs, "mode", octal(f.mode.apply(def)))
	}
	if f.Owner != "" {
		attrs = append(attrs, "owner", f.Owner)
	}
	if f.Group != "" {
		attrs = append(attrs, "group", f.Group)
	}
	return attrs
}

// octal formats a mode as chmod(1) takes it, such as 0644 or 4755.
func octal(m fs.FileMode) string { return fmt.Sprintf("%04o", fileModeToUnix(m)) }

// contentChange summarises how the file at p (of the given size) differs
// from want: both sizes, and for files up to maxPreviewRead how many lines
// would be removed and added.
func contentChange(p string, size int64, want string) (string, error) {
	sizes := fmt.Sprintf("%d -> %d bytes", size, len(want))
	if size > maxPreviewRead {
		return sizes, nil
	}
	old, err := os.ReadFile(p)
	if err != nil {
		return "", err
	}
	removed, added := lineChanges(old, []byte(want))
	return fmt.Sprintf("%s, -%d +%d lines", sizes, removed, added), nil
}

// lineChanges counts the lines that differ between a and b once the lines
// they start and end with in common are set aside: the lines a change
// would remove and add.
func lineChanges(a, b []byte) (removed, added int) {
	la, lb := splitLines(a), splitLines(b)
	pre := 0
	for pre < len(la) && pre < len(lb) && bytes.Equal(la[pre], lb[pre]) {
		pre++
	}
	suf := 0
	for suf < len(la)-pre && suf < len(lb)-pre && bytes.Equal(la[len(la)-1-suf], lb[len(lb)-1-suf]) {
		suf++
	}
	return len(la) - pre - suf, len(lb) - pre - suf
}

// splitLines splits b after each newline; a last line without one counts.
func splitLines(b []byte) [][]byte {
	if len(b) == 0 {
		return nil
	}
	return bytes.SplitAfter(b, []byte("\n"))[:countLines(b)]
}

// countLines counts lines, a last one without a newline included.
func countLines(b []byte) int {
	n := bytes.Count(b, []byte("\n"))
	if len(b) > 0 && b[len(b)-1] != '\n' {
		n++
	}
	return n
}
