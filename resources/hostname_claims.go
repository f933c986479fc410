package resources

import "github.com/graftcm/graft/engine"

// Claims claims what each managed name lives in: the static name's file,
// the kernel's name, and the file of the pretty name. Two hostname
// resources, or a hostname and a file resource on /etc/hostname or
// /etc/machine-info, would undo each other's work on every run.
func (h *Hostname) Claims() []engine.Claim {
	w := h.want()
	var claims []engine.Claim
	if w.static != "" {
		claims = append(claims, engine.Claim{Space: "path", Name: staticNameFile})
	}
	if w.transient != "" {
		claims = append(claims, engine.Claim{Space: "kernel", Name: "hostname"})
	}
	if w.pretty != "" {
		claims = append(claims, engine.Claim{Space: "path", Name: machineInfoFile})
	}
	return claims
}
