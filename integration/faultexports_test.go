package integration

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/graftcm/graft/api"
)

// shareGraph is h's graph: it exports a file naming h and collects every
// exported file into h's shared directory.
func shareGraph(h *Host) string {
	return fmt.Sprintf(`resources:
  file:
  - name: "@@%[1]s-hosts"
    path: /nonexistent/%[1]s-hosts
    content: "%[2]s %[1]s\n"
collect:
- kind: file
  pattern: %[3]s
`, h.Name, h.Addr, filepath.Join(h.Dir, "shared"))
}

// exportPrefix is where the cluster keeps the hosts' exports.
const exportPrefix = "_graft/export/"

// exporters returns the hosts whose exports the cluster holds, as h's
// agent reads them (linearizable).
func exporters(h *Host) ([]string, error) {
	cl, err := h.client()
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), faultOpTimeout)
	defer cancel()
	kvs, _, err := cl.List(ctx, exportPrefix, api.Linearizable())
	if err != nil {
		return nil, err
	}
	var out []string
	for _, kv := range kvs {
		if node, _, ok := strings.Cut(strings.TrimPrefix(kv.Key, exportPrefix), "/"); ok && !slices.Contains(out, node) {
			out = append(out, node)
		}
	}
	slices.Sort(out)
	return out, nil
}

// exportsConverge makes the last host leave for good (graft leave) and
// checks that the cluster withdraws its export, after the 2 s grace the
// hosts were given, and that each remaining host converges on the
// exports of the two still exporting: their files, removed, are put back;
// the departed host's, removed, is not.
func exportsConverge(t *testing.T, c *Cluster) {
	t.Helper()
	stay, gone := c.Hosts[:2], c.Hosts[2]
	c.WaitFor("every host holding every exported file", settleWait, func() error {
		return holdsExports(c.Hosts, c.Hosts)
	})
	if out, err := gone.Graft("leave"); err != nil {
		t.Fatalf("%s: graft leave: %v: %s", gone.Name, err, out)
	}
	if err := gone.wait(stopWait); err != nil {
		t.Fatalf("%s left and exited: %v", gone.Name, err)
	}
	left := time.Now()
	want := []string{stay[0].Name, stay[1].Name}
	c.WaitFor("the departed host's export withdrawn", settleWait, func() error {
		got, err := exporters(stay[0])
		if err == nil && !slices.Equal(got, want) {
			err = fmt.Errorf("the cluster holds the exports of %v, want %v", got, want)
		}
		return err
	})
	Figure(t, "host left with graft leave (export grace 2 s): time until its export was withdrawn", time.Since(left))
	// A collected file removed is put back while it is collected: the
	// remaining hosts' come back, the departed one's must stay away.
	streak := 0
	c.WaitFor("the remaining hosts collecting exactly the remaining exports", settleWait, func() error {
		for _, h := range stay {
			path := filepath.Join(h.Dir, "shared", gone.Name+"-hosts")
			if _, err := os.Stat(path); err == nil {
				streak = 0
				for _, o := range c.Hosts {
					_ = os.Remove(filepath.Join(h.Dir, "shared", o.Name+"-hosts"))
				}
				return fmt.Errorf("%s still manages %s's export: it put %s back", h.Name, gone.Name, path)
			}
		}
		if err := holdsExports(stay, stay); err != nil {
			return err
		}
		if streak++; streak < 8 {
			return errors.New("the departed host's file has not stayed away for 2 s yet")
		}
		return nil
	})
	Figure(t, "host left: time until the others collect exactly the remaining exports", time.Since(left))
}

// holdsExports checks that every host of collectors holds the exported
// file of every host of exporting.
func holdsExports(collectors, exporting []*Host) error {
	for _, h := range collectors {
		for _, o := range exporting {
			if err := fileIs(filepath.Join(h.Dir, "shared", o.Name+"-hosts"), o.Addr+" "+o.Name+"\n"); err != nil {
				return err
			}
		}
	}
	return nil
}
