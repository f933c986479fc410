package transport

import (
	"fmt"
	"net"
	"testing"
)

// quietConn is a connection admission can hold: it never has input
// waiting (it is no syscall.Conn), so only heard tells who spoke.
type quietConn struct{ net.Conn }

// FuzzAdmission runs the cluster port's handshake admission through a
// schedule the input spells, byte pairs of an operation and an address:
// connections arrive (in bursts), speak, finish their handshake or
// authenticate, from addresses of which the first few are known. After
// every step it checks the caps and whom admission may close.
func FuzzAdmission(f *testing.F) {
	// 300 silent arrivals from 30 addresses, then a known one, then
	// bursts from one address.
	var flood []byte
	for i := range 300 {
		flood = append(flood, 0, byte(8+i%30))
	}
	f.Add(append(flood, 0, 1, 3, 1, 0, 1))
	f.Add([]byte{3, 2, 0x40, 2, 0x40, 2, 0x40, 2, 0x40, 2, 1, 2, 2, 2})
	f.Add([]byte{0x7c, 9, 0x7c, 10, 0x7c, 11, 0x7c, 12, 0x7c, 13, 0x7c, 14, 0x7c, 15, 0x7c, 16, 0x7c, 17, 0x7c, 3})
	// Every slot taken by the known addresses, then an unknown arrival.
	var known []byte
	for i := range 8 {
		known = append(known, 0x7c, byte(i/2))
	}
	f.Add(append(known, 0, 9))
	// Unknown addresses fill the slots, some speak, and more arrive.
	var mixed []byte
	for i := range 16 {
		mixed = append(mixed, 0x3c, byte(8+i)) // 16 each
	}
	f.Add(append(mixed, 2, 8, 2, 9, 0x1c, 30, 0x7c, 1))
	f.Fuzz(func(t *testing.T, schedule []byte) {
		a := newAdmission()
		for i := range 4 { // the addresses that completed a handshake before
			a.authenticated(ipOf(byte(i)))
		}
		live := map[*pendingConn]bool{} // admitted and not yet evicted or done
		for step := 0; step+1 < len(schedule); step += 2 {
			op, who := schedule[step], schedule[step+1]
			ip := ipOf(who)
			switch op % 4 {
			case 0: // arrivals: 1 to 32
				for range 1 + int(op>>2)%32 {
					arrive(t, a, live, ip)
				}
			case 1: // the oldest live handshake from ip finishes
				if p := oldestLive(live, ip); p != nil {
					if ok, why := a.done(p); !ok || why != nil {
						t.Fatalf("step %d: a live handshake from %s was not held (%v, %v)", step, ip, ok, why)
					}
					delete(live, p)
				}
			case 2: // those from ip speak
				for p := range live {
					if p.ip == ip {
						p.heard.Store(true)
					}
				}
			case 3:
				a.authenticated(ip)
			}
			checkCaps(t, a, live)
		}
	})
}

func ipOf(b byte) string { return fmt.Sprintf("10.0.%d.%d", b/64, b%64) }

func oldestLive(live map[*pendingConn]bool, ip string) *pendingConn {
	var old *pendingConn
	for p := range live {
		if p.ip == ip && (old == nil || p.seq < old.seq) {
			old = p
		}
	}
	return old
}

// arrive admits a connection from ip and checks whom admission closed.
func arrive(t *testing.T, a *admission, live map[*pendingConn]bool, ip string) {
	t.Helper()
	p := &pendingConn{Conn: quietConn{}, ip: ip}
	silentUnknown, unknown := false, false
	for q := range live {
		unknown = unknown || !q.known
		silentUnknown = silentUnknown || !q.known && !q.heard.Load()
	}
	fromIP := a.perIP[ip]
	victim, why, ok := a.admit(p)
	if !ok {
		if p.known || unknown || len(live) < maxPendingHandshakes || why != refusedBusy {
			t.Fatalf("refused a newcomer (known %v, %v) with %d handshakes, unknown ones among them: %v", p.known, why.err, len(live), unknown)
		}
		return
	}
	live[p] = true
	if victim == nil {
		return
	}
	if !live[victim] || !victim.evicted.Load() {
		t.Fatalf("closed a handshake that was not held, or without marking it")
	}
	delete(live, victim)
	if ok, why := a.done(victim); ok || why == nil {
		t.Fatal("an evicted handshake still holds its slot, or would not be told why")
	}
	switch why {
	case refusedAddr:
		if victim.ip != ip || fromIP < limitFor(p.known) {
			t.Fatalf("closed one of %s's handshakes for %s, which had %d of %d", victim.ip, ip, fromIP, limitFor(p.known))
		}
	case refusedBusy:
		switch {
		case victim.known && !p.known:
			t.Fatal("closed a known address's handshake to make room for an unknown one")
		case victim.known && unknown:
			t.Fatal("closed a known address's handshake while unknown ones were pending")
		case victim.heard.Load() && silentUnknown:
			t.Fatal("closed a handshake that spoke while a silent unknown one was pending")
		}
	default:
		t.Fatalf("evicted for %v", why.err)
	}
}

// checkCaps checks admission's counts against the live handshakes and
// its caps.
func checkCaps(t *testing.T, a *admission, live map[*pendingConn]bool) {
	t.Helper()
	if len(a.pending) != len(live) || len(a.pending) > maxPendingHandshakes {
		t.Fatalf("%d handshakes held, %d live, cap %d", len(a.pending), len(live), maxPendingHandshakes)
	}
	byIP := map[string]int{}
	for p := range live {
		if _, ok := a.pending[p]; !ok {
			t.Fatalf("a live handshake from %s is not held", p.ip)
		}
		byIP[p.ip]++
	}
	for ip, n := range byIP {
		if a.perIP[ip] != n || n > maxPendingPerKnownIP {
			t.Fatalf("%s: %d handshakes counted, %d held, cap %d", ip, a.perIP[ip], n, maxPendingPerKnownIP)
		}
	}
	if len(a.perIP) != len(byIP) {
		t.Fatalf("addresses counted %d, holding handshakes %d", len(a.perIP), len(byIP))
	}
}
