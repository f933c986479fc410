package integration

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
)

// Names. Everything a run creates is named after its PID: network
// namespaces "gft<pid>-<net>-h<host>", bridges "gft<pid>b<net>" and
// "gft<pid>p<net>" (the partition side), the hosts' ends of the veth pairs
// "gft<pid>v<net>h<host>" (at most 15 bytes, the kernel's limit), and the
// temporary directory of the binary "graft-integ-<pid>-*".
const (
	namePrefix = "gft"
	tmpPrefix  = "graft-integ-"
)

// ownerRe reads the PID out of a namespace's or link's name.
var ownerRe = regexp.MustCompile(`^` + namePrefix + `([0-9]+)[-bpv]`)

// ownerOf returns the PID whose run named name, if a run did.
func ownerOf(name string) (int, bool) {
	m := ownerRe.FindStringSubmatch(name)
	if m == nil {
		return 0, false
	}
	pid, err := strconv.Atoi(m[1])
	return pid, err == nil
}

// alive reports whether a process with this PID exists.
func alive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// ipCmd runs `ip args...`, its output in the error if it fails.
func ipCmd(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// ipOut runs `ip args...` and returns its output.
func ipOut(args ...string) (string, error) {
	out, err := exec.Command("ip", args...).Output()
	if err != nil {
		return "", fmt.Errorf("ip %s: %w", strings.Join(args, " "), err)
	}
	return string(out), nil
}

// namespaces lists the network namespaces `ip netns` knows.
func namespaces() ([]string, error) {
	out, err := ipOut("netns", "list")
	if err != nil {
		return nil, err
	}
	var names []string
	for line := range strings.Lines(out) {
		if f := strings.Fields(line); len(f) > 0 {
			names = append(names, f[0])
		}
	}
	return names, nil
}

// links lists the network interfaces of this namespace.
func links() ([]string, error) {
	out, err := ipOut("-o", "link", "show")
	if err != nil {
		return nil, err
	}
	var names []string
	for line := range strings.Lines(out) {
		// "7: gft12b1: <BROADCAST,...", "8: gft12v1h1@if2: <...".
		_, rest, ok := strings.Cut(line, ": ")
		if !ok {
			continue
		}
		name, _, _ := strings.Cut(rest, ":")
		name, _, _ = strings.Cut(name, "@")
		names = append(names, name)
	}
	return names, nil
}

// deleteNamespace kills the processes in namespace ns, then deletes it
// (which deletes the veth ends in it, and so their peers).
func deleteNamespace(ns string) error {
	out, _ := ipOut("netns", "pids", ns)
	for _, f := range strings.Fields(out) {
		if pid, err := strconv.Atoi(f); err == nil && pid > 1 {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	return ipCmd("netns", "del", ns)
}

// removeWhere deletes the namespaces and links whose owner keep selects,
// and returns what it found.
func removeWhere(keep func(pid int) bool) ([]string, error) {
	var found []string
	var errs []error
	nss, err := namespaces()
	errs = append(errs, err)
	for _, ns := range nss {
		if pid, ok := ownerOf(ns); ok && keep(pid) {
			found = append(found, "network namespace "+ns)
			errs = append(errs, deleteNamespace(ns))
		}
	}
	ls, err := links()
	errs = append(errs, err)
	for _, l := range ls {
		if pid, ok := ownerOf(l); ok && keep(pid) {
			found = append(found, "link "+l)
			if err := ipCmd("link", "del", l); err != nil && linkExists(l) {
				errs = append(errs, err)
			}
		}
	}
	return found, errors.Join(errs...)
}

// linkExists reports whether this namespace has the link (a veth end
// goes with its peer).
func linkExists(name string) bool {
	return ipCmd("link", "show", name) == nil
}

// removeLeftovers deletes what runs whose process is gone left behind:
// namespaces (and the processes in them), links and build directories.
func removeLeftovers() error {
	dead := func(pid int) bool { return !alive(pid) }
	found, err := removeWhere(dead)
	if len(found) > 0 {
		fmt.Fprintf(os.Stderr, "integration: removed an earlier run's leftovers: %s\n", strings.Join(found, ", "))
	}
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), tmpPrefix+"*"))
	for _, d := range dirs {
		num, _, _ := strings.Cut(strings.TrimPrefix(filepath.Base(d), tmpPrefix), "-")
		if pid, perr := strconv.Atoi(num); perr == nil && dead(pid) {
			err = errors.Join(err, os.RemoveAll(d))
		}
	}
	return err
}

// removeRun deletes whatever this run left, after reporting it.
func removeRun(pid int) {
	_, _ = removeWhere(func(p int) bool { return p == pid })
}

// leftoversOf lists the namespaces and links of run pid, and the
// processes running its binary bin, that are still there.
func leftoversOf(pid int, bin string) []string {
	var left []string
	nss, _ := namespaces()
	for _, ns := range nss {
		if p, ok := ownerOf(ns); ok && p == pid {
			left = append(left, "network namespace "+ns)
		}
	}
	ls, _ := links()
	for _, l := range ls {
		if p, ok := ownerOf(l); ok && p == pid {
			left = append(left, "link "+l)
		}
	}
	procs, _ := filepath.Glob("/proc/[0-9]*/exe")
	for _, exe := range procs {
		if target, err := os.Readlink(exe); err == nil && strings.TrimSuffix(target, " (deleted)") == bin {
			left = append(left, "graft process "+filepath.Base(filepath.Dir(exe)))
		}
	}
	return left
}
