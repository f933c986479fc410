package discovery

import (
	"context"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// formed is what one fresh node of a forming run decided.
type formed struct {
	name string
	addr string
	d    Decision
	b    *running
}

// form starts fresh nodes on h, each after its delay, and returns what
// each decided (see formWith).
func form(t *testing.T, h *hub, names []string, delays []time.Duration, seed uint64) []formed {
	t.Helper()
	cfgs := make([]Config, len(names))
	for i, name := range names {
		cfgs[i] = testConfig(t, h, name)
	}
	return formWith(t, cfgs, delays, seed)
}

// formWith starts a beacon of each config after its delay and returns
// what each decided; a node that decides Bootstrap then announces a
// cluster ID, as the agent does once its server has bootstrapped.
func formWith(t *testing.T, cfgs []Config, delays []time.Duration, seed uint64) []formed {
	t.Helper()
	out := make([]formed, len(cfgs))
	var wg sync.WaitGroup
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i, cfg := range cfgs {
		cfg.Rand = rand.New(rand.NewPCG(seed, uint64(i)))
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case <-time.After(delays[i]):
			case <-ctx.Done():
				return
			}
			b := start(t, cfg)
			d, err := b.Settle(ctx)
			if err != nil {
				t.Errorf("seed %d: %s: Settle: %v", seed, cfg.NodeName, err)
				return
			}
			if d.Step == Bootstrap {
				b.SetState(true, "cid-"+cfg.NodeName)
			}
			out[i] = formed{name: cfg.NodeName, addr: cfg.Addr, d: d, b: b}
		}()
	}
	wg.Wait()
	return out
}

// checkOneCluster checks that exactly one node bootstrapped and that the
// joins connect every node to it (the gossip ring is transitive).
func checkOneCluster(t *testing.T, runs []formed, seed uint64) {
	t.Helper()
	parent := map[string]string{}
	var find func(string) string
	find = func(n string) string {
		if p, ok := parent[n]; ok && p != n {
			return find(p)
		}
		return n
	}
	var boot []string
	byAddr := map[string]string{}
	for _, r := range runs {
		parent[r.name] = r.name
		byAddr[r.addr] = r.name
	}
	for _, r := range runs {
		switch r.d.Step {
		case Bootstrap:
			boot = append(boot, r.name)
		case Join:
			for _, a := range r.d.Join {
				parent[find(r.name)] = find(byAddr[a])
			}
		default:
			t.Errorf("seed %d: %s decided %v", seed, r.name, r.d.Step)
		}
	}
	if len(boot) != 1 {
		t.Fatalf("seed %d: %d nodes bootstrapped (%v), want exactly 1; decisions %+v", seed, len(boot), boot, runs)
	}
	for _, r := range runs {
		if find(r.name) != find(boot[0]) {
			t.Errorf("seed %d: %s's joins do not reach the bootstrapper %s: %+v", seed, r.name, boot[0], runs)
		}
	}
}

// TestFiveFreshNodesInRandomOrderFormOneCluster starts five fresh nodes in
// a random order with random delays (up to a whole settle window apart)
// and random latencies, many times: exactly one bootstraps every time,
// and every other joins its ring. The seeds are logged. It runs on
// virtual time (testing/synctest) over a group in memory, so the delays
// and losses are the ones drawn, whatever the load on the machine: on
// real time a loaded machine stretches them past what the forming rule
// assumes (see Decide), and a failure would say nothing of the rule.
func TestFiveFreshNodesInRandomOrderFormOneCluster(t *testing.T) {
	trials := 50
	if testing.Short() {
		trials = 10
	}
	base := rand.Uint64()
	t.Logf("base seed %d", base)
	for trial := range trials {
		seed := base + uint64(trial)
		synctest.Test(t, func(t *testing.T) {
			r := rand.New(rand.NewPCG(seed, 0))
			names := []string{"n1", "n2", "n3", "n4", "n5"}
			r.Shuffle(len(names), func(i, j int) { names[i], names[j] = names[j], names[i] })
			delays := make([]time.Duration, len(names))
			for i := range delays {
				delays[i] = time.Duration(r.Int64N(int64(300 * time.Millisecond)))
			}
			// Every packet takes up to 2.5 intervals to arrive, and one
			// in five is lost, so the nodes hear each other at different
			// times, in different orders, or not at all for a while.
			lat := rand.New(rand.NewPCG(seed, 1))
			g := &memGroup{delay: func() time.Duration { return time.Duration(lat.Int64N(int64(100 * time.Millisecond))) },
				drop: func() bool { return lat.IntN(5) == 0 }}
			cfgs := make([]Config, len(names))
			for i, name := range names {
				cfgs[i] = testConfig(t, nil, name)
				cfgs[i].Conn = g.conn(uint16(7000 + i))
			}
			runs := formWith(t, cfgs, delays, seed)
			if t.Failed() {
				t.Logf("trial %d: seed %d: order %v, delays %v", trial, seed, names, delays)
			}
			checkOneCluster(t, runs, seed)
			for _, r := range runs {
				if r.b != nil {
					r.b.stop()
				}
			}
		})
	}
}

// TestThreeFreshNodesFormOneClusterWithinTheTrafficBound counts the
// packets of a three-node run: one at start (a query that announces the
// node too), a few on changes, and in steady state at most one per node
// per interval.
func TestThreeFreshNodesFormOneClusterWithinTheTrafficBound(t *testing.T) {
	h := &hub{}
	begin := time.Now()
	runs := form(t, h, []string{"c", "a", "b"}, make([]time.Duration, 3), 1)
	checkOneCluster(t, runs, 1)
	interval := 40 * time.Millisecond
	// Until formed: every packet at least Interval/4 after the last.
	formedIn := time.Since(begin)
	for _, r := range runs {
		if sent, most := r.b.Stats().Sent, uint64(formedIn/(interval/4))+2; sent > most {
			t.Errorf("%s sent %d packets in %v while forming, want at most %d", r.name, sent, formedIn, most)
		}
	}
	// Steady state: wait until each node has announced the state it
	// settled in, then count packets while each sends 5 more.
	for _, r := range runs {
		waitFor(t, r.name+"'s steady announcements", func() bool {
			r.b.mu.Lock()
			defer r.b.mu.Unlock()
			return !r.b.announce && !r.b.answer && time.Since(r.b.lastSent) < interval
		})
	}
	t0 := time.Now()
	var before []uint64
	for _, r := range runs {
		before = append(before, r.b.Stats().Sent)
	}
	for i, r := range runs {
		waitFor(t, r.name+" to send 5 more", func() bool { return r.b.Stats().Sent >= before[i]+5 })
	}
	elapsed := time.Since(t0)
	var total uint64
	for i, r := range runs {
		sent := r.b.Stats().Sent - before[i]
		total += sent
		if most := uint64(elapsed/interval) + 1; sent > most {
			t.Errorf("%s sent %d packets in %v of steady state, want at most one per %v (%d)", r.name, sent, elapsed, interval, most)
		}
	}
	t.Logf("formed in %v; steady state: %d packets from 3 nodes in %v (interval %v)", formedIn.Round(time.Millisecond),
		total, elapsed.Round(time.Millisecond), interval)
}

func TestLateFreshNodeJoinsTheBootstrappedCluster(t *testing.T) {
	h := &hub{}
	first := form(t, h, []string{"m", "n"}, make([]time.Duration, 2), 2)
	checkOneCluster(t, first, 2)
	// "a" is lower than both, but comes after the cluster exists.
	late := form(t, h, []string{"a"}, []time.Duration{0}, 3)
	if d := late[0].d; d.Step != Join || d.Cluster == "" || !strings.HasPrefix(d.Cluster, "cid-") {
		t.Fatalf("late node decided %+v, want to join the bootstrapped cluster", d)
	}
}

func TestQueryIsAnsweredAndRateLimited(t *testing.T) {
	h := &hub{}
	cfg := testConfig(t, h, "a")
	cfg.Interval = 8 * time.Second // the answer is not the periodic announcement
	b := start(t, cfg)
	waitFor(t, "the start query", func() bool { return b.Stats().Sent == 1 })
	q := testConfig(t, h, "q")
	q.Interval = time.Hour
	start(t, q) // its start query asks a to answer
	waitFor(t, "a's answer", func() bool { return b.Stats().Sent == 2 })
	answered := time.Now()
	key := testKey(t, "k1")
	raw := newRawSender(t)
	for i := range 20 {
		m := announcement("r", 1, uint64(i+1))
		m.kind = kindQuery
		raw.to(t, cfg.Conn.(*hubConn), encodeWith(t, m, key))
	}
	waitFor(t, "the burst to be read", func() bool { return b.Stats().Accepted >= 21 })
	waitFor(t, "a's answer to the burst", func() bool { return b.Stats().Sent >= 3 })
	if gap := time.Since(answered); gap < 2*time.Second-100*time.Millisecond {
		t.Errorf("answered a burst of 20 queries %v after the last packet, want no sooner than a quarter interval (2s)", gap)
	}
	if sent := b.Stats().Sent; sent != 3 {
		t.Errorf("sent %d packets, want 3: start, one answer, one answer to the whole burst", sent)
	}
}

func TestChangedAddressIsFoundAgainUnderTheSameName(t *testing.T) {
	h := &hub{}
	a := start(t, testConfig(t, h, "a"))
	b := start(t, testConfig(t, h, "b"))
	waitFor(t, "a to hear b", func() bool { _, ok := peerNamed(a.Beacon, "b"); return ok })
	b.SetAddr("10.9.9.9:7946")
	waitFor(t, "a to hear b's new address", func() bool { p, _ := peerNamed(a.Beacon, "b"); return p.Addr == "10.9.9.9:7946" })
	if ps := a.Peers(); len(ps) != 1 {
		t.Errorf("a's peers %+v, want b only, under its name", ps)
	}
}

func TestRestartedPeerIsFoundAgain(t *testing.T) {
	h := &hub{}
	a := start(t, testConfig(t, h, "a"))
	b := start(t, testConfig(t, h, "b"))
	waitFor(t, "a to hear b", func() bool { _, ok := peerNamed(a.Beacon, "b"); return ok })
	waitFor(t, "b to send a few", func() bool { return b.Stats().Sent > 3 })
	b.stop()
	cfg := testConfig(t, h, "b") // same name and address, a new run: its sequence starts again
	cfg.Fresh = false
	b2, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	b2.SetState(true, "cid-x")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); b2.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	waitFor(t, "a to hear the restarted b", func() bool { p, _ := peerNamed(a.Beacon, "b"); return p.ClusterID == "cid-x" })
	if n := a.Stats().Ignored["replayed"]; n != 0 {
		t.Errorf("a took %d of the restarted b's packets for replays", n)
	}
}

func TestNodeWithNoKeySeesTheClusterAndSendsNothing(t *testing.T) {
	h := &hub{}
	a := start(t, testConfig(t, h, "a"))
	a.SetState(true, "cid-a")
	cfg := testConfig(t, h, "k")
	cfg.Key = nil
	k := start(t, cfg)
	waitFor(t, "k to see a's cluster", func() bool { return len(k.Sightings()) == 1 })
	if d, err := k.Settle(context.Background()); err != nil || d.Step != Wait {
		t.Fatalf("Settle of a keyless node = %+v, %v; want a zero decision after the window", d, err)
	}
	want := Sighting{Cluster: "graft", Node: "a", Addr: "a:7946"}
	if s := k.Sightings(); len(s) != 1 || s[0] != want {
		t.Errorf("sightings %+v, want %+v", s, want)
	}
	if st := k.Stats(); st.Sent != 0 {
		t.Errorf("a keyless node sent %d packets, want none", st.Sent)
	}
	if n := a.Stats().Ignored["unauthenticated"]; n != 0 {
		t.Errorf("a heard %d packets from the keyless node, want none", n)
	}
}

// settleAll settles the beacons at once and returns their decisions.
func settleAll(t *testing.T, bs ...*running) []Decision {
	t.Helper()
	decs := make([]Decision, len(bs))
	var wg sync.WaitGroup
	for i, b := range bs {
		wg.Go(func() {
			d, err := b.Settle(t.Context())
			if err != nil {
				t.Error(err)
			}
			decs[i] = d
		})
	}
	wg.Wait()
	return decs
}

// Issue 13 (forming, review): b and c name a, the lowest, and decide to
// join it; a goes quiet before it bootstraps. Settle has returned, and
// they waited for ever. Acting on the view as it changes, b, named by c
// once a is gone, bootstraps, which it announces at once, and c then
// joins it: one cluster.
func TestNodesWhoseCandidateWentQuietBeforeBootstrappingFormWithTheNext(t *testing.T) {
	h := &hub{}
	cfgs := map[string]Config{}
	for _, name := range []string{"a", "b", "c"} {
		cfg := testConfig(t, h, name)
		cfg.PeerTTL = 400 * time.Millisecond
		cfgs[name] = cfg
	}
	a := start(t, cfgs["a"]) // heard, never settles
	b, c := start(t, cfgs["b"]), start(t, cfgs["c"])
	waitFor(t, "b and c to hear a", func() bool {
		pb, okb := peerNamed(b.Beacon, "a")
		pc, okc := peerNamed(c.Beacon, "a")
		return okb && okc && pb.Candidate == "a" && pc.Candidate == "a"
	})
	for i, d := range settleAll(t, b, c) {
		if d.Step != Join || d.Candidate != "a" {
			t.Fatalf("%s decided %+v, want to join a", []string{"b", "c"}[i], d)
		}
	}
	a.stop()
	var booted []string
	waitFor(t, "one of b and c to bootstrap, and the other to join it", func() bool {
		for _, r := range []struct {
			name string
			b    *running
		}{{"b", b}, {"c", c}} {
			if r.b.Decision().Step == Member {
				continue // bootstrapped already
			}
			if d := r.b.Act(); d.Step == Bootstrap {
				booted = append(booted, r.name)
			}
		}
		p, _ := peerNamed(c.Beacon, "b")
		return p.Bootstrapped && c.Decision().Step == Join
	})
	if !slices.Equal(booted, []string{"b"}) {
		t.Fatalf("bootstrapped: %v, want b alone", booted)
	}
}

// A fresh node that heard a node bootstrap, gone quiet since (crashed
// before anyone joined it), never bootstraps another cluster, though the
// other fresh nodes name it: a cluster of its key exists.
func TestAFreshNodeThatHeardAClusterNeverBootstrapsAnother(t *testing.T) {
	h := &hub{}
	var rs []*running
	for _, name := range []string{"a", "b", "c"} {
		cfg := testConfig(t, h, name)
		cfg.PeerTTL = 400 * time.Millisecond
		rs = append(rs, start(t, cfg))
	}
	a, b, c := rs[0], rs[1], rs[2]
	decs := settleAll(t, a, b, c)
	if decs[0].Step != Bootstrap {
		t.Fatalf("a decided %+v, want to bootstrap", decs[0])
	}
	a.SetState(true, "cid-a")
	waitFor(t, "b to hear a bootstrapped", func() bool { p, _ := peerNamed(b.Beacon, "a"); return p.Bootstrapped })
	a.stop()
	waitFor(t, "b to hear c name it, a gone", func() bool {
		c.Act() // as its agent does while it waits to be added
		_, heard := peerNamed(b.Beacon, "a")
		p, _ := peerNamed(b.Beacon, "c")
		return !heard && p.Candidate == "b" && p.Settled
	})
	if d := b.Act(); d.Step != Wait || !d.SawCluster {
		t.Errorf("b, which heard a's cluster, acts %+v; want to wait, saying it saw a cluster", d)
	}
}
