package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// waitThree waits for the first three hosts to be one cluster of three
// voters, and logs how long that took.
func waitThree(t *testing.T, c *Cluster) {
	t.Helper()
	took := c.WaitFor("one cluster of three voters", formWait, func() error {
		_, err := Agreement(c.Hosts[:3], 3)
		return err
	})
	Figure(t, "3 hosts joined with --join: time to one cluster of 3 voters", took)
}

// fileIs checks that path holds content.
func fileIs(path, content string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if string(b) != content {
		return fmt.Errorf("%s holds %q, want %q", path, b, content)
	}
	return nil
}

// Three hosts each export a file and collect every exported file into a
// directory of their own: each ends with the three exported files (one
// from each host) and its own local file, never another host's.
func TestThreeHostsExportAndCollectFiles(t *testing.T) {
	c := NewCluster(t, 3)
	graph := func(h *Host) string {
		return fmt.Sprintf(`resources:
  file:
  - name: "@@%[1]s-hosts"
    path: /nonexistent/%[1]s-hosts
    content: "%[2]s %[1]s\n"
  - name: local
    path: %[3]s/local-%[1]s
    content: "only on %[1]s\n"
collect:
- kind: file
  pattern: %[3]s
`, h.Name, h.Addr, filepath.Join(h.Dir, "shared"))
	}
	start := time.Now()
	for _, h := range c.Hosts {
		h.Graph = []string{"yaml", h.WriteFile("share.yaml", graph(h))}
	}
	c.StartJoined(c.Hosts)
	waitThree(t, c)
	c.WaitFor("every host holding every exported file", settleWait, func() error {
		for _, h := range c.Hosts {
			dir := filepath.Join(h.Dir, "shared")
			for _, o := range c.Hosts {
				if err := fileIs(filepath.Join(dir, o.Name+"-hosts"), o.Addr+" "+o.Name+"\n"); err != nil {
					return err
				}
			}
			if err := fileIs(filepath.Join(dir, "local-"+h.Name), "only on "+h.Name+"\n"); err != nil {
				return err
			}
		}
		return nil
	})
	Figure(t, "3 hosts export and collect: time from start until every host holds every file", time.Since(start))
	for _, h := range c.Hosts {
		entries, err := os.ReadDir(filepath.Join(h.Dir, "shared"))
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		if want := fmt.Sprintf("[h1-hosts h2-hosts h3-hosts local-%s]", h.Name); fmt.Sprint(names) != want {
			t.Errorf("%s's shared directory holds %v, want %s", h.Name, names, want)
		}
	}
	if _, err := os.Stat("/nonexistent"); err == nil {
		t.Error("an exported file was written on its exporting host's own path")
	}

	// An exported file removed on a collecting host is put back there.
	drift := filepath.Join(c.Hosts[2].Dir, "shared", "h1-hosts")
	if err := os.Remove(drift); err != nil {
		t.Fatal(err)
	}
	c.WaitFor("h3 putting back h1's collected file", settleWait, func() error {
		return fileIs(drift, c.Hosts[0].Addr+" h1\n")
	})
}

// Three hosts run a command under `@@x:1`; the holder's agent is killed
// mid-run (its command dies with it). No two runs ever overlap, and the
// next one starts only once the cluster has declared the holder dead.
func TestClusterSemaphoreRunsNeverOverlapAcrossHosts(t *testing.T) {
	c := NewCluster(t, 3)
	logPath := filepath.Join(c.Hosts[0].Dir, "..", "runs")
	for _, h := range c.Hosts {
		h.Graph = []string{"yaml", h.WriteFile("graph.yaml", "resources: {}\n")}
	}
	c.StartJoined(c.Hosts)
	waitThree(t, c)
	for _, h := range c.Hosts {
		h.WriteFile("graph.yaml", fmt.Sprintf(`resources:
  exec:
  - name: critical
    cmd: 'echo "start %[1]s $(date +%%s%%N) $$" >> %[2]s; sleep 4; echo "end %[1]s $(date +%%s%%N)" >> %[2]s'
    shell: /bin/sh
    meta:
      sema: ["@@x:1"]
`, h.Name, logPath))
	}

	var holder *Host
	var pid int
	c.WaitFor("a host running the command", settleWait, func() error {
		runs, err := readRuns(logPath)
		if err != nil {
			return err
		}
		for name, r := range runs {
			if !r.start.IsZero() && r.end.IsZero() {
				holder, _ = ByName(c.Hosts, name)
				pid = r.pid
				return nil
			}
		}
		return fmt.Errorf("no run under way: %v", runs)
	})
	killed := time.Now()
	holder.Kill()
	c.WaitFor("the killed holder's command gone", settleWait, func() error {
		if alive(pid) {
			return fmt.Errorf("pid %d of the killed holder's command is alive", pid)
		}
		return nil
	})
	gone := time.Now()
	Figure(t, "holder killed: time until its command was gone", gone.Sub(killed))

	var runs map[string]run
	c.WaitFor("both other hosts' runs done", deadWait, func() error {
		var err error
		if runs, err = readRuns(logPath); err != nil {
			return err
		}
		for _, h := range Others(c.Hosts, holder) {
			if runs[h.Name].end.IsZero() {
				return fmt.Errorf("%s has not run yet: %v", h.Name, runs)
			}
		}
		return nil
	})
	r := runs[holder.Name]
	r.end = gone
	runs[holder.Name] = r
	if err := noOverlap(runs); err != nil {
		t.Fatal(err)
	}
	next := time.Time{}
	for name, r := range runs {
		if name != holder.Name && r.start.After(killed) && (next.IsZero() || r.start.Before(next)) {
			next = r.start
		}
	}
	Figure(t, "@@x:1 holder killed: time until another host started its run", next.Sub(killed))
	if next.Sub(killed) < 5*time.Second {
		t.Errorf("another host started %v after the holder was killed, before gossip could declare it dead", next.Sub(killed))
	}
}

// run is one host's run of the command, from the log the runs share.
type run struct {
	start, end time.Time
	pid        int
}

// readRuns reads the shared log: "start HOST NANOS PID" and "end HOST
// NANOS" lines. A host that ran twice is an error: each runs once.
func readRuns(path string) (map[string]run, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	runs := map[string]run{}
	for line := range strings.Lines(string(b)) {
		var what, host string
		var nanos int64
		var pid int
		if _, err := fmt.Sscan(line, &what, &host, &nanos); err != nil {
			return nil, fmt.Errorf("%s: %q: %w", path, line, err)
		}
		r := runs[host]
		at := time.Unix(0, nanos)
		switch what {
		case "start":
			if !r.start.IsZero() {
				return nil, fmt.Errorf("%s ran twice: %s", host, b)
			}
			if _, err := fmt.Sscan(line, &what, &host, &nanos, &pid); err != nil {
				return nil, fmt.Errorf("%s: %q: %w", path, line, err)
			}
			r.start, r.pid = at, pid
		case "end":
			r.end = at
		}
		runs[host] = r
	}
	return runs, nil
}

// noOverlap checks that no two runs overlap.
func noOverlap(runs map[string]run) error {
	for a, ra := range runs {
		for b, rb := range runs {
			if a < b && ra.start.Before(rb.end) && rb.start.Before(ra.end) {
				return fmt.Errorf("the runs of %s (%v to %v) and %s (%v to %v) overlap",
					a, ra.start.Format(time.StampMilli), ra.end.Format(time.StampMilli),
					b, rb.start.Format(time.StampMilli), rb.end.Format(time.StampMilli))
			}
		}
	}
	return nil
}

// Three hosts follow the cluster's deploys (graft run empty): a deploy
// stored through one host runs on every host, and so does the next one,
// stored through another.
func TestDeployReachesEveryHost(t *testing.T) {
	c := NewCluster(t, 3)
	c.StartJoined(c.Hosts)
	waitThree(t, c)
	dir := filepath.Join(c.Hosts[0].Dir, "..", "deployed")
	deploy := func(via *Host, n int) {
		t.Helper()
		path := via.WriteFile("web.yaml", fmt.Sprintf(`template: true
resources:
  file:
  - name: marker
    path: "%s/{{ .Hostname }}"
    content: "deploy %d on {{ .Hostname }}\n"
`, dir, n))
		out, err := via.Graft("deploy", "yaml", path)
		if err != nil {
			t.Fatalf("deploy %d through %s: %v", n, via.Name, err)
		}
		t.Logf("deploy %d through %s: %s", n, via.Name, strings.TrimSpace(out))
		start := time.Now()
		c.WaitFor(fmt.Sprintf("deploy %d run on every host", n), settleWait, func() error {
			for _, h := range c.Hosts {
				if err := fileIs(filepath.Join(dir, h.Name), fmt.Sprintf("deploy %d on %s\n", n, h.Name)); err != nil {
					return err
				}
			}
			return nil
		})
		Figure(t, fmt.Sprintf("deploy %d: time until every host ran it", n), time.Since(start))
	}
	deploy(c.Hosts[1], 1)
	deploy(c.Hosts[2], 2)
	out, err := c.Hosts[0].Graft("deploy", "list")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "*  2") || strings.Count(out, "web.yaml") != 2 {
		t.Errorf("deploy list on h1:\n%s\nwant deploys 1 and 2, 2 current", out)
	}
}
