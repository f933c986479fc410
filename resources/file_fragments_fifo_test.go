package resources

import (
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestFileFragmentThatIsAFIFOIsAnErrorNotAHang names a FIFO as a fragment:
// reading it would wait for a writer that never comes, and hold the
// resource forever. It is refused as not a regular file.
func TestFileFragmentThatIsAFIFOIsAnErrorNotAHang(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	f := newFile(t, &File{Path: filepath.Join(dir, "out"), Fragments: []string{fifo}})
	errc := make(chan error, 1)
	go func() { _, err := f.CheckApply(t.Context(), true); errc <- err }()
	select {
	case err := <-errc:
		if err == nil || !strings.Contains(err.Error(), "not a regular file") {
			t.Errorf("CheckApply: %v, want an error saying the fragment is not a regular file", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("CheckApply still reading the FIFO after 20s")
	}
}
