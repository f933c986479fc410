package resources

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/graftcm/graft/gapi/yamlgraph"
)

// A pkg in state newest upgrades when another process refreshes the lists
// and they offer a newer version: before, Watch followed only dpkg's status
// file, so an apt-get update went unnoticed until something else woke the
// resource.
func TestPkgNewestUpgradesWhenAnotherProcessRefreshesTheLists(t *testing.T) {
	r := newAptRepo(t)
	name := testPkgName(t, "lists")
	r.add(name, "1.0", "", nil)
	r.update()
	r.install(name)
	src := fmt.Sprintf("resources:\n  pkg:\n  - name: %s\n    state: newest\n", name)
	res, err := yamlgraph.Parse("newest.yaml", []byte(src), NewRegistry(Deps{Files: runHub(t)}))
	if err != nil {
		t.Fatal(err)
	}
	waitConverged(t, runMgmtExample(t, res, nil))
	if v := installedVersion(t, name); v != "1.0" {
		t.Fatalf("%s is at %q before the refresh, want 1.0", name, v)
	}
	r.add(name, "2.0", "", nil)
	r.update() // apt-get update, in a process of its own
	waitInstalled(t, name, "2.0")
}

// watchListsOf runs the lists half of p's Watch until the test ends: the
// events rt counts are the lists' alone, not dpkg's (which other tests on
// the machine change at any time).
func watchListsOf(t *testing.T, p *Pkg) *testRuntime {
	t.Helper()
	rt := newTestPkg(t, p, nil)
	ctx, cancel := context.WithCancel(context.Background())
	kick, refreshing, stop, err := p.watchLists(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if kick == nil {
		t.Fatalf("state %s: the lists are not watched", p.State)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		afterRefreshes(ctx, kick, refreshing, listsQuiet, p.listsEvent)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		stop()
	})
	return rt
}

// watchNewest watches the lists for a pkg in state newest.
func watchNewest(t *testing.T, name string) *testRuntime {
	t.Helper()
	p := newPkg(name, runHub(t))
	p.State = pkgNewest
	return watchListsOf(t, p)
}

// waitEvent waits for the next event of rt.
func waitEvent(t *testing.T, rt *testRuntime, what string) {
	t.Helper()
	select {
	case <-rt.eventCh:
	case <-time.After(30 * time.Second):
		t.Fatalf("no event after %s", what)
	}
}

// Each apt-get update by another process is one event of a pkg's Watch,
// not one per list it rewrites.
func TestPkgListsWatchReportsEachRefreshOnce(t *testing.T) {
	r := newAptRepo(t)
	name := testPkgName(t, "once")
	r.add(name, "1.0", "", nil)
	r.update()
	rt := watchNewest(t, name)
	for i := range int32(2) {
		r.add(name, fmt.Sprintf("%d.0", i+2), "", nil)
		r.update()
		waitEvent(t, rt, fmt.Sprintf("refresh %d", i+1))
		if n := rt.events.Load(); n != i+1 {
			t.Fatalf("after refresh %d: %d events, want %d", i+1, n, i+1)
		}
	}
}

// While apt-get update still holds its lock (here in a Post-Invoke hook
// that waits for the test, after the lists were rewritten), the lists'
// changes are not reported: the resource checks once the refresh is over.
func TestPkgListsWatchWaitsForARunningRefreshToEnd(t *testing.T) {
	r := newAptRepo(t)
	name := testPkgName(t, "lock")
	r.add(name, "1.0", "", nil)
	r.update()
	entered, release := filepath.Join(r.dir, "entered"), filepath.Join(r.dir, "release")
	conf, err := os.ReadFile(filepath.Join(r.dir, "apt.conf"))
	if err != nil {
		t.Fatal(err)
	}
	// The hook gives up by itself after a minute.
	hook := fmt.Sprintf("touch %s; for i in $(seq 1200); do [ -e %s ] && exit 0; sleep 0.05; done", entered, release)
	r.write("apt.conf", string(conf)+fmt.Sprintf("APT::Update::Post-Invoke { %q; };\n", hook))
	rt := watchNewest(t, name)

	r.add(name, "2.0", "", nil)
	update := exec.Command("apt-get", "update", "-q")
	if err := update.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		r.write("release", "")
		_ = update.Wait()
	})
	eventually(t, 30*time.Second, "apt-get update reaching its Post-Invoke hook", func() bool {
		_, err := os.Stat(entered)
		return err == nil
	})
	if !lockHeld(filepath.Join(r.dir, "lists", "lock")) {
		t.Fatal("apt-get update in its hook does not hold the lists' lock")
	}
	// Bounded: the lists changed well over listsQuiet ago, so an event
	// that ignored the lock would come within this.
	select {
	case <-rt.eventCh:
		t.Fatalf("an event while apt-get update still ran (%d in all)", rt.events.Load())
	case <-time.After(4 * listsQuiet):
	}
	r.write("release", "")
	if err := update.Wait(); err != nil {
		t.Fatalf("apt-get update: %v", err)
	}
	waitEvent(t, rt, "the refresh ended")
	if n := rt.events.Load(); n != 1 {
		t.Errorf("%d events, want 1", n)
	}
}

// A pkg whose package no list has runs apt-get update once and fails. Its
// own refresh rewrites the lists, but must not wake it: that would refresh
// again, fail again, and so on for ever. A refresh by another process
// still does.
func TestPkgOwnRefreshDoesNotWakeItself(t *testing.T) {
	r := newAptRepo(t)
	name := testPkgName(t, "own")
	r.add(name+"-other", "1.0", "", nil)
	r.update()
	p := newPkg(name, runHub(t))
	rt := watchListsOf(t, p)
	if _, err := p.CheckApply(t.Context(), true); !errors.Is(err, ErrNoSuchPackage) {
		t.Fatalf("CheckApply: %v, want ErrNoSuchPackage", err)
	}
	// Bounded: a wake by its own refresh would come listsQuiet after it.
	select {
	case <-rt.eventCh:
		t.Fatal("the resource's own apt-get update woke it")
	case <-time.After(6 * listsQuiet):
	}
	r.add(name+"-other", "2.0", "", nil)
	r.update()
	waitEvent(t, rt, "another process's refresh")
}

// A refresh that rewrites its lists one after another, holding its lock
// throughout, is reported once, after the lock is released and the lists
// have been quiet for listsQuiet; kicks spread out are reported each.
func TestListsRefreshIsReportedOnceAfterItEnds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		kick := make(chan struct{}, 1)
		var locked atomic.Bool
		var events atomic.Int32
		done := make(chan struct{})
		go func() {
			defer close(done)
			afterRefreshes(ctx, kick, locked.Load, listsQuiet, func() { events.Add(1) })
		}()

		// The refresh: locked for 5s, a list renamed every 300ms.
		locked.Store(true)
		for range 10 {
			kick <- struct{}{}
			time.Sleep(300 * time.Millisecond)
		}
		time.Sleep(2 * time.Second)
		synctest.Wait()
		if n := events.Load(); n != 0 {
			t.Fatalf("%d events while the refresh held its lock", n)
		}
		locked.Store(false)
		time.Sleep(listsQuiet)
		synctest.Wait()
		if n := events.Load(); n != 1 {
			t.Fatalf("%d events after the refresh ended, want 1", n)
		}
		// Two unlocked changes far apart are two events.
		kick <- struct{}{}
		time.Sleep(2 * listsQuiet)
		kick <- struct{}{}
		time.Sleep(2 * listsQuiet)
		synctest.Wait()
		if n := events.Load(); n != 3 {
			t.Errorf("%d events in all, want 3", n)
		}
		cancel()
		<-done
	})
}

// apt-config's shell output gives the lists directory, quotes unescaped.
func TestAptShellValueReadsTheListsDir(t *testing.T) {
	for _, tc := range []struct{ out, want, err string }{
		{"LISTS='/var/lib/apt/lists/'\n", "/var/lib/apt/lists", ""},
		{`LISTS='/srv/it'\''s/lists/'` + "\n", "/srv/it's/lists", ""},
		{"LISTS='lists/'\n", "", "not an absolute path"},
		{"", "", "want LISTS="},
	} {
		got, err := aptShellValue(tc.out, "LISTS")
		if got != tc.want || (err == nil) != (tc.err == "") || (err != nil && !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("%q: %q, %v; want %q, error containing %q", tc.out, got, err, tc.want, tc.err)
		}
	}
}
