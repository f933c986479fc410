package main

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
)

// Machine is what the figures were measured on.
type Machine struct {
	CPU         string `json:"cpu"`
	Cores       int    `json:"cores"`
	MemoryMiB   int    `json:"memory_mib"`
	OS          string `json:"os"`
	Kernel      string `json:"kernel"`
	GoVersion   string `json:"go_version"`
	GraftCommit string `json:"graft_commit"`
}

// machine describes this host; fields it cannot read say "unknown".
func machine() Machine {
	m := Machine{CPU: "unknown", Cores: runtime.NumCPU(), OS: "unknown", Kernel: "unknown",
		GoVersion: runtime.Version(), GraftCommit: "unknown"}
	if v := procField("/proc/cpuinfo", "model name"); v != "" {
		m.CPU = v
	}
	if v := procField("/proc/meminfo", "MemTotal"); v != "" {
		kib, _ := strconv.Atoi(strings.TrimSuffix(v, " kB"))
		m.MemoryMiB = kib / 1024
	}
	if v := procField("/etc/os-release", "PRETTY_NAME"); v != "" {
		m.OS = strings.Trim(v, `"`)
	}
	var u syscall.Utsname
	if syscall.Uname(&u) == nil {
		m.Kernel = utsString(u.Sysname[:]) + " " + utsString(u.Release[:])
	}
	if out, err := exec.Command("git", "describe", "--always", "--dirty", "--abbrev=12").Output(); err == nil {
		m.GraftCommit = strings.TrimSpace(string(out))
	}
	return m
}

// procField returns the value of the first "key: value" or "key=value"
// line of file with key.
func procField(file, key string) string {
	b, err := os.ReadFile(file)
	if err != nil {
		return ""
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			k, v, ok = strings.Cut(sc.Text(), "=")
		}
		if ok && strings.TrimSpace(k) == key {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func utsString(b []int8) string {
	var sb strings.Builder
	for _, c := range b {
		if c == 0 {
			break
		}
		sb.WriteByte(byte(c))
	}
	return sb.String()
}

// String is the machine on one line.
func (m Machine) String() string {
	return m.CPU + ", " + strconv.Itoa(m.Cores) + " cores, " + strconv.Itoa(m.MemoryMiB) + " MiB, " +
		m.OS + " (" + m.Kernel + "), " + m.GoVersion + ", graft " + m.GraftCommit
}
