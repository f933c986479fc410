package resources

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"syscall"
	"unicode"
	"unicode/utf8"

	"github.com/graftcm/graft/engine"
	"github.com/graftcm/graft/internal/atomicfile"
	"github.com/graftcm/graft/internal/fswatch"
)

// Where the static and pretty names live, as systemd defines them.
const (
	staticNameFile  = "/etc/hostname"
	machineInfoFile = "/etc/machine-info"
	prettyNameKey   = "PRETTY_HOSTNAME"
	// maxHostnameLen is the kernel's HOST_NAME_MAX.
	maxHostnameLen = 64
	// maxHostFileSize bounds what is read of /etc/hostname and
	// /etc/machine-info.
	maxHostFileSize = 1 << 20
)

// Hostname manages the host's names, as mgmt's hostname resource does: the
// static name (/etc/hostname, the name the host boots with), the transient
// name (the kernel's, which sethostname sets and uname reports) and the
// pretty name (free text, PRETTY_HOSTNAME in /etc/machine-info). Hostname is
// the default for each of the three left empty; a name that is still empty
// is not managed.
//
// The files are replaced atomically and the kernel name is set directly.
// Watch follows the files with inotify and the kernel name with poll(2) on
// /proc/sys/kernel/hostname, which the kernel wakes when the name changes.
type Hostname struct {
	Hostname          string `yaml:"hostname"`
	PrettyHostname    string `yaml:"pretty_hostname"`
	StaticHostname    string `yaml:"static_hostname"`
	TransientHostname string `yaml:"transient_hostname"`

	name string
	hub  *fswatch.Hub
	rt   *engine.Runtime
}

// hostNames are the names a hostname resource manages; empty ones are not
// managed.
type hostNames struct{ pretty, static, transient string }

func (h *Hostname) want() hostNames {
	or := func(s string) string {
		if s != "" {
			return s
		}
		return h.Hostname
	}
	return hostNames{pretty: or(h.PrettyHostname), static: or(h.StaticHostname), transient: or(h.TransientHostname)}
}

// Validate wants at least one name, static and transient names the kernel
// and resolvers accept, and a pretty name of one line.
func (h *Hostname) Validate() error {
	if h.Hostname == "" && h.PrettyHostname == "" && h.StaticHostname == "" && h.TransientHostname == "" {
		return engine.ParamErrorf("hostname", "set at least one of hostname, pretty_hostname, static_hostname and transient_hostname")
	}
	from := func(explicit, key string) string {
		if explicit != "" {
			return key
		}
		return "hostname"
	}
	w := h.want()
	if err := checkHostname(from(h.StaticHostname, "static_hostname"), w.static); err != nil {
		return err
	}
	if err := checkHostname(from(h.TransientHostname, "transient_hostname"), w.transient); err != nil {
		return err
	}
	if !utf8.ValidString(w.pretty) || strings.ContainsFunc(w.pretty, unicode.IsControl) {
		return engine.ParamErrorf(from(h.PrettyHostname, "pretty_hostname"), "%q is not one line of UTF-8 text", w.pretty)
	}
	return nil
}

// checkHostname accepts an empty name (unmanaged) or dot-separated labels
// of letters, digits and hyphens, none empty nor starting or ending with a
// hyphen, at most 64 bytes in all.
func checkHostname(key, name string) error {
	if name == "" {
		return nil
	}
	if len(name) > maxHostnameLen {
		return engine.ParamErrorf(key, "%q is %d bytes long; a host name has at most %d", name, len(name), maxHostnameLen)
	}
	for label := range strings.SplitSeq(name, ".") {
		bad := label == "" || strings.HasPrefix(label, "-") || strings.HasSuffix(label, "-") ||
			strings.ContainsFunc(label, func(r rune) bool {
				return r > unicode.MaxASCII || !(r == '-' || unicode.IsLetter(r) || unicode.IsDigit(r))
			})
		if bad {
			return engine.ParamErrorf(key, "%q is not a host name: want dot-separated labels of letters, digits and inner hyphens", name)
		}
	}
	return nil
}

// Init keeps the runtime.
func (h *Hostname) Init(rt *engine.Runtime) error { h.rt = rt; return nil }

// Cleanup does nothing.
func (h *Hostname) Cleanup() error { return nil }

// Watch reports changes to the managed names: to /etc/hostname, to
// /etc/machine-info and to the kernel's name.
func (h *Hostname) Watch(ctx context.Context) error {
	if h.hub == nil {
		return errors.New("hostname: no file watcher configured")
	}
	w := h.want()
	for _, f := range []struct {
		path    string
		managed bool
	}{{staticNameFile, w.static != ""}, {machineInfoFile, w.pretty != ""}} {
		if !f.managed {
			continue
		}
		cancel, err := h.hub.Watch(f.path, h.rt.Event)
		if err != nil {
			return err
		}
		defer cancel()
	}
	if w.transient == "" {
		h.rt.Running()
		<-ctx.Done()
		return nil
	}
	kw, err := openKernelNameWatch()
	if err != nil {
		return err
	}
	defer kw.close()
	h.rt.Running()
	return kw.run(ctx, h.rt.Event)
}

// hostNamePart is one of the names: how to read it and how to set it.
type hostNamePart struct {
	attr   string // the name's attribute value in logs
	want   string
	read   func() (string, error)
	write  func(string) error
	setter string // hostnamed's method that sets it; "" for none
}

// CheckApply brings each managed name to its declared value, logging each
// change (with apply false, each change it would make). The static and
// pretty names are set through systemd-hostnamed where it runs on the
// system bus, so that it validates them and tells its listeners, and are
// written to their files otherwise. The kernel's name is always set with
// sethostname: hostnamed keeps it equal to a set static name and would
// refuse a different transient one.
func (h *Hostname) CheckApply(ctx context.Context, apply bool) (bool, error) {
	w := h.want()
	checkOK := true
	var hn *hostnamed
	dialed := false
	defer func() {
		if hn != nil {
			hn.close()
		}
	}()
	for _, p := range []hostNamePart{
		{"static", w.static, readStaticName, writeStaticName, "SetStaticHostname"},
		{"transient", w.transient, readKernelName, writeKernelName, ""},
		{"pretty", w.pretty, readPrettyName, writePrettyName, "SetPrettyHostname"},
	} {
		if p.want == "" {
			continue
		}
		cur, err := p.read()
		if err != nil {
			return false, err
		}
		if cur == p.want {
			continue
		}
		checkOK = false
		if !apply {
			h.rt.Logger.Info("would change", "name", p.attr, "from", cur, "to", p.want)
			continue
		}
		if p.setter != "" && !dialed {
			hn, dialed = dialHostnamed(ctx, h.rt.Logger), true
		}
		if p.setter != "" && hn != nil {
			h.rt.Logger.Info("changing", "name", p.attr, "from", cur, "to", p.want, "via", "hostnamed")
			if err := hn.set(ctx, p.setter, p.want); err != nil {
				return false, fmt.Errorf("%s name: systemd-hostnamed: %w", p.attr, err)
			}
			continue
		}
		h.rt.Logger.Info("changing", "name", p.attr, "from", cur, "to", p.want, "via", viaOf(p.setter))
		if err := p.write(p.want); err != nil {
			return false, err
		}
	}
	return checkOK, nil
}

// viaOf names, for logs, how graft itself sets a name.
func viaOf(setter string) string {
	if setter == "" {
		return "sethostname"
	}
	return "file"
}

// readStaticName returns the first line of /etc/hostname that is neither
// blank nor a comment, trimmed, as systemd reads it; "" if there is none.
func readStaticName() (string, error) {
	b, err := readHostFile(staticNameFile)
	if err != nil {
		return "", err
	}
	for line := range strings.Lines(string(b)) {
		line = strings.TrimSpace(line)
		if line != "" && !strings.HasPrefix(line, "#") {
			return line, nil
		}
	}
	return "", nil
}

func writeStaticName(name string) error {
	if err := writeHostFile(staticNameFile, []byte(name+"\n")); err != nil {
		return fmt.Errorf("static name: %w", err)
	}
	return nil
}

// writeHostFile replaces one of the host's name files atomically, keeping
// its mode. A file that is a mount point (containers bind-mount
// /etc/hostname) cannot be renamed over: it is rewritten in place.
func writeHostFile(path string, data []byte) error {
	err := atomicfile.Write(path, data, fileMode(path, 0o644), true)
	if !errors.Is(err, syscall.EBUSY) {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	return errors.Join(err, f.Close())
}

// readKernelName returns the kernel's host name, as uname reports it.
func readKernelName() (string, error) {
	var u syscall.Utsname
	if err := syscall.Uname(&u); err != nil {
		return "", fmt.Errorf("transient name: uname: %w", err)
	}
	var b []byte
	for _, c := range u.Nodename {
		if c == 0 {
			break
		}
		b = append(b, byte(c))
	}
	return string(b), nil
}

func writeKernelName(name string) error {
	if err := syscall.Sethostname([]byte(name)); err != nil {
		return fmt.Errorf("transient name: sethostname: %w", err)
	}
	return nil
}

// readHostFile reads one of the host's name files; a missing file reads as
// empty.
func readHostFile(path string) ([]byte, error) {
	b, err := atomicfile.Read(path, maxHostFileSize)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return b, nil
}

// fileMode returns the permission bits of path, or def if it is missing.
func fileMode(path string, def fs.FileMode) fs.FileMode {
	if fi, err := os.Stat(path); err == nil {
		return fi.Mode().Perm()
	}
	return def
}
