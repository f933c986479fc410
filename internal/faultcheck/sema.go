package faultcheck

import (
	"cmp"
	"fmt"
	"slices"
	"time"
)

// Hold is one slot of a cluster semaphore, as the client that acquired it
// saw it.
type Hold struct {
	Client int
	Sema   string
	Count  int64
	// Token is the slot's fencing token.
	Token uint64
	// Call is when the client asked for the slot, From when it got it,
	// To when it stopped relying on it: when it called Release, or
	// learnt that the slot was lost; Unknown if it still held it.
	Call, From, To int64
	// Lost says that the slot was lost rather than released.
	Lost bool
}

func (h Hold) String() string {
	to, how := fmt.Sprint(h.To), "released"
	switch {
	case h.To == Unknown:
		to, how = "end", "still held"
	case h.Lost:
		how = "lost"
	}
	return fmt.Sprintf("client %d %s:%d token %d asked %d held [%d,%s] %s", h.Client, h.Sema, h.Count, h.Token, h.Call, h.From, to, how)
}

// Semaphores checks the holds of each semaphore: at no instant do more
// clients hold a slot than the count; no two holds share a token; and a
// slot acquired after another was granted (asked for after the other's
// acquire returned) has the larger token.
func Semaphores(holds []Hold) error {
	bySema := map[string][]Hold{}
	for _, h := range holds {
		bySema[h.Sema] = append(bySema[h.Sema], h)
	}
	ids := make([]string, 0, len(bySema))
	for id := range bySema {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		hs := bySema[id]
		if err := tokensGrow(id, hs); err != nil {
			return err
		}
		if err := neverOverCount(id, hs); err != nil {
			return err
		}
	}
	return nil
}

func tokensGrow(id string, hs []Hold) error {
	byToken := slices.Clone(hs)
	slices.SortFunc(byToken, func(a, b Hold) int { return cmp.Compare(a.Token, b.Token) })
	for i := 1; i < len(byToken); i++ {
		if a, b := byToken[i-1], byToken[i]; a.Token == b.Token {
			return &Violation{Checker: "semaphore", What: fmt.Sprintf("semaphore %q: token %d granted twice", id, a.Token),
				History: []string{a.String(), b.String()}}
		}
	}
	// Against real time: an acquire that began after another returned
	// must get a larger token. Sorted by return, a later-asked hold whose
	// token is below the largest token returned before its call breaks it.
	byFrom := slices.Clone(hs)
	slices.SortFunc(byFrom, func(a, b Hold) int { return cmp.Compare(a.From, b.From) })
	for _, b := range hs {
		for _, a := range byFrom {
			if a.From >= b.Call {
				break
			}
			if a.Token > b.Token {
				return &Violation{Checker: "semaphore",
					What:    fmt.Sprintf("semaphore %q: token %d granted after token %d had been", id, b.Token, a.Token),
					History: []string{a.String(), b.String()}}
			}
		}
	}
	return nil
}

func neverOverCount(id string, hs []Hold) error {
	type edge struct {
		at    int64
		delta int
		h     Hold
	}
	var edges []edge
	for _, h := range hs {
		edges = append(edges, edge{h.From, 1, h}, edge{h.To, -1, h})
	}
	// Intervals are closed: at one instant a start counts before an end.
	slices.SortFunc(edges, func(a, b edge) int {
		if c := cmp.Compare(a.at, b.at); c != 0 {
			return c
		}
		return b.delta - a.delta
	})
	var held []Hold
	for _, e := range edges {
		if e.delta < 0 {
			held = slices.DeleteFunc(held, func(h Hold) bool { return h == e.h })
			continue
		}
		held = append(held, e.h)
		if int64(len(held)) > e.h.Count {
			out := make([]string, len(held))
			for i, h := range held {
				out[i] = h.String()
			}
			return &Violation{Checker: "semaphore",
				What:    fmt.Sprintf("semaphore %q: %d holders at once at %d, count %d", id, len(held), e.at, e.h.Count),
				History: out}
		}
	}
	return nil
}

// Kill is a node killed while the rest of the cluster kept a quorum, and
// what became of the semaphore slots it held.
type Kill struct {
	Node string
	// Tokens are the slots it held when killed.
	Tokens []uint64
	// Freed says whether the cluster had freed all its slots within the
	// time it was watched; After is when it had (from the kill), or how
	// long it was watched if it had not.
	Freed bool
	After time.Duration
	// Stalled is how long after the kill the others first committed a
	// new entry (After, if they never did): freeing the slots is a write,
	// so the bound runs from then. The others may stall though they are a
	// majority (one of them still waiting on an RPC to a node cut off).
	Stalled time.Duration
}

// Released checks that every slot of each killed node was freed within
// bound of its death, or of the first write the others committed after
// it. A kill after which the others committed nothing while watched tells
// nothing.
func Released(kills []Kill, bound time.Duration) error {
	for _, k := range kills {
		switch {
		case k.Stalled >= k.After && !k.Freed:
			continue
		case !k.Freed:
			return &Violation{Checker: "semaphore",
				What: fmt.Sprintf("node %s killed holding tokens %v: some still held %v later, want all freed within %v",
					k.Node, k.Tokens, k.After, bound)}
		case k.After-k.Stalled > bound:
			return &Violation{Checker: "semaphore",
				What: fmt.Sprintf("node %s killed holding tokens %v: freed %v later (the others committed again after %v), want within %v of that",
					k.Node, k.Tokens, k.After, k.Stalled, bound)}
		}
	}
	return nil
}
