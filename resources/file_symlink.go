package resources

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// checkSymlink brings a path declared a symlink (Symlink true) to its state:
// absent removes it as any absent file; otherwise the path must be a
// symbolic link whose target is exactly Source (which need not exist, and
// may be relative). A link with another target is replaced; a file or
// directory only with force. Owner and group apply to the link itself.
func (f *File) checkSymlink(p string, apply bool) (bool, error) {
	fi, err := os.Lstat(p)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return false, err
	}
	exists := err == nil
	if f.State == stateAbsent {
		return f.checkAbsent(p, fi, exists, apply)
	}
	isLink := exists && fi.Mode()&fs.ModeSymlink != 0
	if exists && !isLink && !f.Force {
		return false, &forceError{fmt.Sprintf("%s is a %s but the graph declares a symlink; set force: true to replace it",
			p, describe(fi))}
	}
	target := ""
	if isLink {
		if target, err = os.Readlink(p); err != nil {
			return false, err
		}
	}
	if isLink && target == f.Source {
		return f.checkLinkOwner(p, fi, apply)
	}
	action := "create"
	switch {
	case isLink:
		action = "retarget"
	case exists:
		action = "replace"
	}
	if !apply {
		f.rt.Logger.Info("would change", "path", p, "action", action, "kind", "symlink", "target", f.Source)
		return false, nil
	}
	if exists && !isLink {
		f.rt.Logger.Info("replacing", "path", p, "was", describe(fi))
		if err := removeAll(p); err != nil {
			return false, err
		}
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return false, err
	}
	f.rt.Logger.Info("linking", "path", p, "target", f.Source)
	if err := replaceSymlink(f.Source, p); err != nil {
		return false, err
	}
	if fi, err = os.Lstat(p); err != nil {
		return false, err
	}
	_, err = f.checkLinkOwner(p, fi, true)
	return false, err
}

// replaceSymlink makes p a symlink to target, renaming a new link over
// whatever symlink or file is at p, so p never goes missing.
func replaceSymlink(target, p string) error {
	tmp := filepath.Join(filepath.Dir(p), "."+filepath.Base(p)+".graft-link-"+strconv.FormatInt(time.Now().UnixNano(), 36))
	if err := os.Symlink(target, tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, p); err != nil {
		_ = os.Remove(tmp)
		return err
	}
	return nil
}

// checkLinkOwner brings the owner and group of the link itself in line.
func (f *File) checkLinkOwner(p string, fi fs.FileInfo, apply bool) (bool, error) {
	d, err := f.diffAttrs(fi)
	if err != nil {
		return false, err
	}
	if d.uid == -1 && d.gid == -1 {
		return true, nil
	}
	if !apply {
		f.rt.Logger.Info("would change", "path", p, "action", "update", "owner", f.Owner, "group", f.Group)
		return false, nil
	}
	f.rt.Logger.Info("changing owner", "path", p, "owner", f.Owner, "group", f.Group)
	return false, os.Lchown(p, d.uid, d.gid)
}
