package fsm

import (
	"bytes"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
)

// randomCommand returns a command over a small space of keys, nodes and
// semaphores, so that commands often meet; some are invalid.
func randomCommand(rng *rand.Rand, nested bool) Command {
	pick := func(prefix string, n int) string { return prefix + itoa(uint64(rng.IntN(n))) }
	value := func() []byte { return []byte(pick("v", 3)) }
	ops := 12
	if nested {
		ops = 3
	}
	switch rng.IntN(ops) {
	case 0:
		return Command{Op: OpPut, Key: pick("k/", 8), Value: value()}
	case 1:
		return Command{Op: OpPut, Key: pick("k/", 8), Value: value(), Ephemeral: true, Node: pick("n", 4)}
	case 2:
		if rng.IntN(4) == 0 {
			return Command{Op: OpDeletePrefix, Key: pick("k/", 2)}
		}
		return Command{Op: OpDelete, Key: pick("k/", 8)}
	case 3:
		c := Command{Op: OpTxn}
		for range rng.IntN(3) {
			c.Compares = append(c.Compares, Compare{
				Target: CompareTarget(1 + rng.IntN(4)), Key: pick("k/", 8), Value: value(), Rev: uint64(rng.IntN(20)),
			})
		}
		for range rng.IntN(3) {
			c.Then = append(c.Then, randomCommand(rng, true))
		}
		for range rng.IntN(3) {
			c.Else = append(c.Else, randomCommand(rng, true))
		}
		return c
	case 4, 5:
		c := Command{Op: OpExportSet, Node: pick("n", 4)}
		for range rng.IntN(4) {
			c.Exports = append(c.Exports, Export{Kind: pick("kind", 2), Name: pick("/name/", 3), Data: value()})
		}
		return c
	case 6, 7:
		return Command{Op: OpSemaAcquire, Sema: pick("s", 3), Count: int64(1 + rng.IntN(2)), Node: pick("n", 4), Holder: pick("h", 3)}
	case 8, 9:
		return Command{Op: OpSemaRelease, Sema: pick("s", 3), Node: pick("n", 4), Holder: pick("h", 3)}
	case 10:
		return Command{Op: OpExpireNode, Node: pick("n", 4)}
	default:
		if rng.IntN(3) == 0 {
			return Command{Op: Op(rng.IntN(12)), Key: pick(SemaPrefix, 2)} // mostly invalid
		}
		return Command{Op: OpRemoveNode, Node: pick("n", 4)}
	}
}

func randomEntries(seed uint64, n int) [][]byte {
	rng := rand.New(rand.NewPCG(seed, 0))
	entries := make([][]byte, n)
	for i := range entries {
		cmds := make([]Command, 1+rng.IntN(8))
		for j := range cmds {
			cmds[j] = randomCommand(rng, false)
		}
		data, err := EncodeBatch(cmds)
		if err != nil {
			panic(err)
		}
		entries[i] = data
	}
	return entries
}

func TestDeterminism(t *testing.T) {
	for seed := range uint64(5) {
		entries := randomEntries(seed, 600)
		a, b := New(Options{}), New(Options{History: 7})
		for i, data := range entries {
			index := uint64(i + 1)
			ra, errA := a.Apply(index, data)
			rb, errB := b.Apply(index, data)
			if errA != nil || errB != nil {
				t.Fatalf("seed %d entry %d: %v, %v", seed, index, errA, errB)
			}
			if !reflect.DeepEqual(ra, rb) {
				t.Fatalf("seed %d entry %d: results differ:\n%+v\n%+v", seed, index, ra, rb)
			}
			if i == len(entries)/2 {
				// Carrying on from a restored snapshot changes nothing.
				if err := b.Restore(bytes.NewReader(persist(t, b))); err != nil {
					t.Fatalf("Restore: %v", err)
				}
			}
		}
		sa, sb := persist(t, a), persist(t, b)
		if !bytes.Equal(sa, sb) {
			t.Fatalf("seed %d: snapshots differ", seed)
		}
		checkInvariants(t, a)
		if kvs, _ := a.List("", 0); len(kvs) < 5 || a.Rev() < 300 {
			t.Fatalf("seed %d: the stream did too little: %d keys, Rev %d", seed, len(kvs), a.Rev())
		}
	}
}

// checkInvariants checks what must hold of any state.
func checkInvariants(t testing.TB, f *FSM) {
	t.Helper()
	kvs, rev := f.List("", 0)
	owned := 0
	for _, kv := range kvs {
		if kv.ModRev > rev || kv.CreateRev > kv.ModRev || kv.Version == 0 {
			t.Fatalf("%s: revisions %d/%d, version %d, at %d", kv.Key, kv.CreateRev, kv.ModRev, kv.Version, rev)
		}
		if kv.Owner != "" {
			owned++
			if !f.owned.Has(ownedKey{kv.Owner, kv.Key}) {
				t.Fatalf("%s: owner %s not indexed", kv.Key, kv.Owner)
			}
		}
		if id, ok := strings.CutPrefix(kv.Key, SemaPrefix); ok {
			if _, err := decodeSema(kv.Value); err != nil {
				t.Fatalf("semaphore %s: %v", id, err)
			}
		}
	}
	if f.owned.Len() != owned {
		t.Fatalf("owner index has %d keys, want %d", f.owned.Len(), owned)
	}
}
