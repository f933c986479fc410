package systemdtest

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// hostState is what a booted systemd must leave as it was: global kernel
// settings it would write if it could, the host name and the mount table.
type hostState struct {
	sysctls  map[string]string
	hostname string
	mounts   string
}

func readHostState(t *testing.T) hostState {
	t.Helper()
	st := hostState{sysctls: map[string]string{}}
	for _, k := range []string{"kernel/core_pattern", "fs/nr_open", "fs/file-max", "kernel/pid_max", "kernel/printk"} {
		b, err := os.ReadFile("/proc/sys/" + k)
		if err != nil {
			t.Fatal(err)
		}
		st.sysctls[k] = string(b)
	}
	var err error
	if st.hostname, err = os.Hostname(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		t.Fatal(err)
	}
	st.mounts = string(b)
	return st
}

// A booted systemd runs in namespaces of its own on an overlay, starts
// nothing of sysinit.target, runs the units a test adds, and when the test
// ends is gone with its processes and cgroups, having changed nothing of
// the host: its files, host name, kernel settings and mounts.
func TestStartBootsSystemdPrivatelyAndLeavesNothing(t *testing.T) {
	if _, err := os.Stat(bootedDir); err == nil {
		t.Skip("PID 1 is systemd: Start uses the host's own, which this test does not cover")
	}
	// A file of the host outside the temporary directories (which a booted
	// systemd has of its own anyway), that the test removes inside, and one
	// it creates there: if the root were not private, the removal would
	// reach only this test's own file.
	f, err := os.CreateTemp(canaryDir(t), ".systemdtest-canary-*")
	if err != nil {
		t.Fatal(err)
	}
	canary, created := f.Name(), f.Name()+".created"
	t.Cleanup(func() { os.Remove(canary); os.Remove(created) })
	if _, err := f.WriteString("still here"); err != nil {
		t.Fatal(err)
	}
	f.Close()
	before := readHostState(t)

	var pid int
	var cgroups []string
	t.Run("boot", func(t *testing.T) {
		s := Start(t)
		pid = s.PID
		if !s.Booted {
			t.Fatal("Start used the host's systemd, yet PID 1 is not systemd")
		}
		ours, _ := os.Readlink("/proc/self/ns/pid")
		theirs, err := os.Readlink(filepath.Join("/proc", strconv.Itoa(pid), "ns/pid"))
		if err != nil || theirs == ours {
			t.Fatalf("systemd's pid namespace %q (%v), ours %q: want a new one", theirs, err, ours)
		}
		var fs unix.Statfs_t
		if err := unix.Statfs(s.Root, &fs); err != nil || fs.Type != unix.OVERLAYFS_SUPER_MAGIC {
			t.Fatalf("systemd's root is of type %#x (%v), want an overlay", fs.Type, err)
		}
		ctx := t.Context()
		if st := s.ActiveState(ctx, TestTarget); st != "active" {
			t.Fatalf("%s is %s", TestTarget, st)
		}
		for _, u := range []string{"sysinit.target", "systemd-tmpfiles-setup.service", "systemd-tmpfiles-clean.timer", "systemd-sysctl.service"} {
			if st := s.ActiveState(ctx, u); st != "inactive" {
				t.Errorf("%s is %s, want inactive", u, st)
			}
		}
		name := s.AddUnit(t, "[Unit]\nDefaultDependencies=no\n[Service]\nExecStart=/bin/sleep infinity\n")
		if out, err := s.Run(ctx, "systemctl", "start", name+".service"); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		if st := s.ActiveState(ctx, name+".service"); st != "active" {
			t.Fatalf("%s is %s after systemctl start", name, st)
		}
		if out, err := s.Run(ctx, "sh", "-c", "rm "+canary+" && echo x >"+created); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		if _, err := os.Stat(s.Path(created)); err != nil {
			t.Fatalf("the write inside did not land in systemd's root: %v", err)
		}
		if _, err := os.Stat(s.Path(canary)); err == nil {
			t.Fatal("the removal inside did not reach systemd's root")
		}
		cgroups, _ = filepath.Glob("/sys/fs/cgroup/*/graft-systemdtest-" + strconv.Itoa(os.Getpid()) + "-*")
		if len(cgroups) == 0 {
			t.Fatal("no cgroup of the boot found")
		}
	})
	if t.Failed() || pid == 0 {
		return
	}

	if _, err := os.Stat(filepath.Join("/proc", strconv.Itoa(pid))); err == nil {
		t.Errorf("systemd (PID %d) still runs after the test", pid)
	}
	for _, cg := range cgroups {
		if _, err := os.Stat(cg); err == nil {
			t.Errorf("cgroup %s is left behind", cg)
		}
	}
	if b, err := os.ReadFile(canary); err != nil || string(b) != "still here" {
		t.Errorf("the host's file removed inside: %q, %v", b, err)
	}
	if _, err := os.Stat(created); err == nil {
		t.Errorf("%s, written inside, reached the host", created)
	}
	after := readHostState(t)
	for k, v := range before.sysctls {
		if after.sysctls[k] != v {
			t.Errorf("/proc/sys/%s changed from %q to %q", k, v, after.sysctls[k])
		}
	}
	if after.hostname != before.hostname {
		t.Errorf("host name changed from %q to %q", before.hostname, after.hostname)
	}
	for line := range strings.Lines(after.mounts) {
		if strings.Contains(line, "graft-systemdtest") || strings.Contains(line, "overlay") && !strings.Contains(before.mounts, line) {
			t.Errorf("mount left behind: %s", line)
		}
	}
}

// Next to a booted systemd runs root's user manager: it answers on its
// socket, loads the units added to /etc/systemd/user, and "systemctl
// --user" run next to it reaches it.
func TestUserManagerRunsTheUnitsAddedToIt(t *testing.T) {
	s := Start(t)
	u := s.User(t)
	name := u.AddUnit(t, "[Unit]\nDefaultDependencies=no\n[Service]\nExecStart=/bin/sleep infinity\n")
	if _, err := os.Stat(filepath.Join(s.Root, "/etc/systemd/user", name+".service")); err != nil {
		t.Fatal(err)
	}
	if out, err := u.Run(t.Context(), "systemctl", "--user", "start", name+".service"); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if st := u.ActiveState(t.Context(), name+".service"); st != "active" {
		t.Fatalf("the user unit is %s", st)
	}
	if st := s.ActiveState(t.Context(), name+".service"); st == "active" {
		t.Fatal("the system manager runs the user's unit")
	}
}

// canaryDir returns a directory of the host that the booted systemd sees
// through its overlay of /: on the root file system (the overlay does not
// take in other mounts), and not under the paths the boot gives a tmpfs
// of its own. The working directory will do unless the checkout is under
// /tmp, as a CI clone may be; else the home directory, else /var/lib.
func canaryDir(t *testing.T) string {
	t.Helper()
	var root unix.Stat_t
	if err := unix.Stat("/", &root); err != nil {
		t.Fatal(err)
	}
	wd, _ := os.Getwd()
	home, _ := os.UserHomeDir()
	for _, dir := range []string{wd, home, "/var/lib"} {
		var st unix.Stat_t
		if dir == "" || unix.Stat(dir, &st) != nil || st.Dev != root.Dev {
			continue
		}
		private := false
		for _, p := range []string{"/tmp", "/var/tmp", "/run", "/dev"} {
			if dir == p || strings.HasPrefix(dir, p+"/") {
				private = true
			}
		}
		if !private {
			return dir
		}
	}
	t.Skip("no directory of the root file system outside /tmp, /var/tmp, /run and /dev to put the canary in")
	return ""
}
