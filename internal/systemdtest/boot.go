package systemdtest

import (
	"bufio"
	"bytes"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/graftcm/graft/internal/systemdbus"
	"golang.org/x/sys/unix"
)

// bootScript builds the private root and execs systemd; see its header.
//
//go:embed boot.sh
var bootScript string

// boot boots a systemd for t in private namespaces and returns it once it
// answers on its private socket with graft-test.target active. It is
// killed, with everything it started, when t ends.
func boot(t testing.TB) *Systemd {
	t.Helper()
	bin := missing(t)
	layout, hiers, err := cgroupLayout()
	if err != nil {
		t.Skipf("systemdtest: no cgroup hierarchy for a booted systemd: %v", err)
	}
	dir := t.TempDir()
	script := filepath.Join(dir, "boot.sh")
	logPath := filepath.Join(dir, "boot.log")
	console := filepath.Join(dir, "console.log")
	for _, f := range []struct {
		path string
		data []byte
	}{{script, []byte(bootScript)}, {logPath, nil}, {console, nil}} {
		if err := os.WriteFile(f.path, f.data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "ns"), 0o700); err != nil {
		t.Fatal(err)
	}
	procs := makeCgroups(t, hiers)

	logFile, err := os.OpenFile(logPath, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	cmd := exec.Command("/bin/sh", append([]string{script, "stage1", dir, layout, bin}, procs...)...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags: syscall.CLONE_NEWPID | syscall.CLONE_NEWUTS | syscall.CLONE_NEWIPC | syscall.CLONE_NEWNET,
		// Go makes the new mount namespace recursively private before
		// the script runs, so no mount of it can reach the host's.
		Unshareflags: syscall.CLONE_NEWNS,
		Pdeathsig:    syscall.SIGKILL,
	}
	if err := cmd.Start(); err != nil {
		if errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EINVAL) {
			t.Skipf("systemdtest: the kernel refuses new namespaces here: %v", err)
		}
		t.Fatalf("systemdtest: start: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		// SIGKILL to PID 1 of a pid namespace kills every process in it;
		// Wait returns once they are all gone.
		_ = cmd.Process.Kill()
		<-exited
	})
	s := &Systemd{PID: cmd.Process.Pid, Booted: true}
	s.Root = fmt.Sprintf("/proc/%d/root", s.PID)
	s.PrivateSocket = s.Path(proxySocket)
	s.UnitDir = s.Path("/etc/systemd/system")
	if err := waitBooted(s, exited); err != nil {
		t.Fatalf("systemdtest: %v\n--- boot log:\n%s--- console:\n%s", err, readAll(logPath), readAll(console))
	}
	return s
}

// missing skips t if something the boot needs is missing, and returns the
// path of the systemd binary.
func missing(t testing.TB) string {
	t.Helper()
	bin := ""
	// Where distributions install it.
	systemdPaths := []string{"/lib/systemd/systemd", "/usr/lib/systemd/systemd"}
	for _, p := range systemdPaths {
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
			bin = p
			break
		}
	}
	if bin == "" {
		t.Skipf("systemdtest: PID 1 is not systemd and no systemd binary is installed (%s)", strings.Join(systemdPaths, ", "))
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(bin), "systemd-socket-proxyd")); err != nil {
		t.Skipf("systemdtest: systemd-socket-proxyd is not installed next to %s: %v", bin, err)
	}
	for _, tool := range []string{"unshare", "nsenter", "mount", "umount", "pivot_root"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("systemdtest: %s (util-linux) is not installed", tool)
		}
	}
	fss, err := os.ReadFile("/proc/filesystems")
	if err != nil {
		t.Skipf("systemdtest: cannot read /proc/filesystems to look for overlayfs: %v", err)
	}
	if !bytes.Contains(fss, []byte("\toverlay\n")) {
		t.Skip("systemdtest: the kernel has no overlayfs (not in /proc/filesystems)")
	}
	return bin
}

// waitBooted waits until s answers on its private socket with
// graft-test.target active, or the boot exits, or bootTimeout passes.
func waitBooted(s *Systemd, exited <-chan error) error {
	ctx, cancel := context.WithTimeout(context.Background(), bootTimeout)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	last := errors.New("no answer yet")
	for {
		if last = probe(ctx, s); last == nil {
			return nil
		}
		select {
		case err := <-exited:
			return fmt.Errorf("the boot exited: %v", err)
		case <-ctx.Done():
			return fmt.Errorf("systemd did not boot within %v: %w", bootTimeout, last)
		case <-tick.C:
		}
	}
}

// probe reports nil once s's graft-test.target is active.
func probe(ctx context.Context, s *Systemd) error {
	if _, err := os.Stat(s.PrivateSocket); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := systemdbus.DialPrivate(ctx, s.PrivateSocket)
	if err != nil {
		return err
	}
	defer conn.Close()
	probe := &Systemd{conn: conn}
	if st := probe.ActiveState(ctx, TestTarget); st != "active" {
		return fmt.Errorf("%s is %s", TestTarget, st)
	}
	return nil
}

// hierarchy is a cgroup hierarchy systemd uses: where it is mounted and how
// /proc/self/cgroup names it ("" for cgroup v2).
type hierarchy struct{ mount, key string }

// cgroupLayout reports the host's cgroup layout as boot.sh names it
// (unified, hybrid or legacy) and the hierarchies systemd needs in it.
func cgroupLayout() (string, []hierarchy, error) {
	isFS := func(p string, magic int64) bool {
		var st unix.Statfs_t
		return unix.Statfs(p, &st) == nil && int64(st.Type) == magic
	}
	const root = "/sys/fs/cgroup"
	switch {
	case isFS(root, unix.CGROUP2_SUPER_MAGIC):
		return "unified", []hierarchy{{root, ""}}, nil
	case !isFS(root, unix.TMPFS_MAGIC) || !isFS(root+"/systemd", unix.CGROUP_SUPER_MAGIC):
		return "", nil, errors.New("no cgroup hierarchy systemd can use: /sys/fs/cgroup is neither cgroup2 nor a tmpfs holding a name=systemd hierarchy at /sys/fs/cgroup/systemd")
	case isFS(root+"/unified", unix.CGROUP2_SUPER_MAGIC):
		return "hybrid", []hierarchy{{root + "/systemd", "name=systemd"}, {root + "/unified", ""}}, nil
	default:
		return "legacy", []hierarchy{{root + "/systemd", "name=systemd"}}, nil
	}
}

// makeCgroups makes a cgroup for the boot below this process's own in each
// hierarchy, removed (with what systemd made below it) when t ends, and
// returns the paths of their cgroup.procs files.
func makeCgroups(t testing.TB, hiers []hierarchy) []string {
	t.Helper()
	own, err := ownCgroups()
	if err != nil {
		t.Fatalf("systemdtest: %v", err)
	}
	name := fmt.Sprintf("graft-systemdtest-%d-%d", os.Getpid(), time.Now().UnixNano())
	var procs []string
	for _, h := range hiers {
		p, ok := own[h.key]
		if !ok {
			t.Skipf("systemdtest: this process is in no cgroup of %s (/proc/self/cgroup)", h.mount)
		}
		dir := filepath.Join(h.mount, p, name)
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Skipf("systemdtest: cannot make a cgroup for systemd: %v", err)
		}
		t.Cleanup(func() {
			if err := removeCgroup(dir); err != nil {
				t.Errorf("systemdtest: %v", err)
			}
		})
		procs = append(procs, filepath.Join(dir, "cgroup.procs"))
	}
	return procs
}

// ownCgroups reads /proc/self/cgroup: this process's cgroup path by
// hierarchy key ("name=systemd", a controller list, or "" for cgroup v2).
func ownCgroups() (map[string]string, error) {
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return nil, err
	}
	own := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) == 3 {
			own[parts[1]] = parts[2]
		}
	}
	return own, nil
}

// removeCgroup removes the cgroup dir and the cgroups below it, deepest
// first, waiting while the kernel still counts dying processes in them.
func removeCgroup(dir string) error {
	var dirs []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			dirs = append(dirs, p)
		}
		return nil
	})
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("remove cgroup %s: %w", dir, err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for _, d := range slices.Backward(dirs) {
		for {
			err := os.Remove(d)
			if err == nil || errors.Is(err, fs.ErrNotExist) {
				break
			}
			if !errors.Is(err, syscall.EBUSY) || time.Now().After(deadline) {
				return fmt.Errorf("remove cgroup: %w", err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return nil
}

func readAll(p string) string {
	b, err := os.ReadFile(p)
	if err != nil {
		return err.Error() + "\n"
	}
	return string(b)
}
