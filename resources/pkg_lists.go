package resources

import (
	"context"
	"fmt"
	"hash/fnv"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// listsQuiet is how long the package lists must stay unchanged, with no
// refresh holding their lock, before a pkg resource checks again: a
// refresh rewrites its lists one after another, and the resource checks
// once, after the last.
const listsQuiet = 500 * time.Millisecond

// pkgListsDir is where a backend keeps the package lists a refresh (apt-get
// update) rewrites.
type pkgListsDir struct {
	// dir is the directory of the lists.
	dir string
	// lock is the file a refresh holds locked while it runs.
	lock string
	// ignore are entries of dir that every refresh touches, whether or
	// not a list changed.
	ignore []string
}

// pkgListsBackend is a backend whose package lists can be watched.
type pkgListsBackend interface {
	listsDir(ctx context.Context) (pkgListsDir, error)
}

// listsDir asks apt where the lists are (Dir::State::Lists, which
// APT_CONFIG may move). apt-get update keeps the lock file locked while it
// runs, and on every run resets the owner and mode of partial/ and
// auxfiles/.
func (b *aptBackend) listsDir(ctx context.Context) (pkgListsDir, error) {
	out, err := queryCmd(ctx, nil, "apt-config", "shell", "LISTS", "Dir::State::Lists/d")
	if err != nil {
		return pkgListsDir{}, err
	}
	dir, err := aptShellValue(string(out), "LISTS")
	if err != nil {
		return pkgListsDir{}, err
	}
	return pkgListsDir{dir: dir, lock: filepath.Join(dir, "lock"), ignore: []string{"lock", "partial", "auxfiles"}}, nil
}

// aptShellValue reads the value of name from apt-config shell's output
// (name='value', a quote in the value escaped as a shell would), wanting
// an absolute path.
func aptShellValue(out, name string) (string, error) {
	v, ok := strings.CutPrefix(strings.TrimSpace(out), name+"=")
	if !ok || len(v) < 2 || v[0] != '\'' || v[len(v)-1] != '\'' {
		return "", fmt.Errorf("apt-config shell: want %s='...', got %q", name, out)
	}
	v = strings.ReplaceAll(v[1:len(v)-1], `'\''`, "'")
	if !filepath.IsAbs(v) {
		return "", fmt.Errorf("apt-config shell: %s is %q, not an absolute path", name, v)
	}
	return filepath.Clean(v), nil
}

// watchLists subscribes to the package lists, if the backend has lists
// and the state depends on them (every state but uninstalled: newest
// follows the candidate, and a version or a package the lists lacked may
// appear in them). It returns a channel that receives when a list may
// have changed (nil if nothing is watched), a function that reports
// whether a refresh is running, and one that ends the subscription.
func (p *Pkg) watchLists(ctx context.Context) (kick <-chan struct{}, refreshing func() bool, cancel func(), err error) {
	lb, ok := p.be.(pkgListsBackend)
	if !ok || p.State == pkgUninstalled {
		return nil, func() bool { return false }, func() {}, nil
	}
	lists, err := lb.listsDir(ctx)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("package lists: %w", err)
	}
	p.lists.watched.Store(&lists)
	ch := make(chan struct{}, 1)
	cancel, err = p.hub.WatchDir(lists.dir, func(name string) {
		if slices.Contains(lists.ignore, name) {
			return
		}
		select {
		case ch <- struct{}{}:
		default:
		}
	})
	if err != nil {
		return nil, nil, nil, err
	}
	return ch, func() bool { return lockHeld(lists.lock) }, cancel, nil
}

// pkgListsState is what a pkg resource knows of the package lists.
type pkgListsState struct {
	// watched is the lists directory Watch follows; nil if none.
	watched atomic.Pointer[pkgListsDir]
	// checked is the fingerprint of the lists the last check used.
	checked atomic.Uint64
}

// listsPrint returns a fingerprint of the package lists Watch follows
// (each entry's name, size, modification time and inode), 0 if it follows
// none.
func (p *Pkg) listsPrint() uint64 {
	lists := p.lists.watched.Load()
	if lists == nil {
		return 0
	}
	entries, err := os.ReadDir(lists.dir)
	if err != nil {
		return 1 // unreadable lists: a change if they were readable before
	}
	h := fnv.New64a()
	for _, e := range entries {
		if slices.Contains(lists.ignore, e.Name()) {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			continue // gone meanwhile
		}
		var ino uint64
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			ino = st.Ino
		}
		fmt.Fprintf(h, "%s\x00%d %d %d\n", e.Name(), fi.Size(), fi.ModTime().UnixNano(), ino)
	}
	return h.Sum64()
}

// listsChecked records the lists a check of pkgs used.
func listsChecked(pkgs []*Pkg, print uint64) {
	for _, p := range pkgs {
		p.lists.checked.Store(print)
	}
}

// listsEvent reports a refresh of the lists, unless the lists are those
// the last check used: a refresh the check ran itself (of a package the
// lists lacked) would otherwise wake it again, and it would refresh again,
// for ever.
func (p *Pkg) listsEvent() {
	if p.listsPrint() != p.lists.checked.Load() {
		p.rt.Event()
	}
}

// afterRefreshes calls event once for each burst of kicks: when no kick
// has come for quiet and locked (a refresh is running) is false, checking
// again every quiet while it is true. It returns when ctx is done. A nil
// kick never fires.
func afterRefreshes(ctx context.Context, kick <-chan struct{}, locked func() bool, quiet time.Duration, event func()) {
	timer := time.NewTimer(quiet)
	timer.Stop()
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-kick:
			timer.Reset(quiet)
		case <-timer.C:
			if locked() {
				timer.Reset(quiet)
				continue
			}
			event()
		}
	}
}

// lockHeld reports whether another process holds a POSIX lock (as apt does)
// on the file at path. A missing file is not locked.
func lockHeld(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	lk := syscall.Flock_t{Type: syscall.F_WRLCK, Whence: 0}
	if err := syscall.FcntlFlock(f.Fd(), syscall.F_GETLK, &lk); err != nil {
		return false
	}
	return lk.Type != syscall.F_UNLCK
}
