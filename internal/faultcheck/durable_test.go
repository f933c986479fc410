package faultcheck

import (
	"errors"
	"strings"
	"testing"
)

func acked(key, v string, rev uint64) Write { return Write{Key: key, Value: v, Acked: true, Rev: rev} }

// Keys holding their last acknowledged write, or a later write's value
// (acked at its revision, or of unknown outcome), or deleted by a later
// delete, pass.
func TestDurableAcceptsKeysAtOrPastTheirLastAck(t *testing.T) {
	writes := []Write{
		acked("a", "1", 3), acked("a", "2", 6),
		acked("b", "1", 4), {Key: "b", Value: "2"},
		acked("c", "1", 5), {Key: "c", Deleted: true},
		acked("d", "1", 7), {Key: "d", Deleted: true, Acked: true, Rev: 9},
		{Key: "e", Value: "1"},
		acked("f", "1", 2), acked("f", "2", 8), {Key: "f", Value: "3"},
	}
	final := map[string]KV{"a": {"2", 6}, "b": {"2", 10}, "f": {"3", 12}}
	if err := Durable("n0", writes, final); err != nil {
		t.Error(err)
	}
	final["f"] = KV{"2", 8}
	final["e"] = KV{"1", 11}
	if err := Durable("n0", writes, final); err != nil {
		t.Error(err)
	}
}

// A lost acknowledged write (an older value, or the key gone with no
// delete to explain it), a deleted key back, and a value nobody wrote are
// flagged, naming the node and key.
func TestDurableFlagsLostAckedWrites(t *testing.T) {
	writes := []Write{acked("a", "1", 3), acked("a", "2", 6), {Key: "a", Value: "3"},
		acked("b", "1", 4), {Key: "b", Deleted: true, Acked: true, Rev: 8}}
	good := map[string]KV{"a": {"2", 6}}
	for _, tc := range []struct {
		name string
		key  string
		kv   *KV
		want string
	}{
		{"older value", "a", &KV{"1", 3}, "the acknowledged put a=2 acked @6 is lost"},
		{"vanished", "a", nil, "the acknowledged put a=2 acked @6 is lost"},
		{"deleted comes back", "b", &KV{"1", 4}, "the acknowledged delete b acked @8 is lost"},
		{"nobody wrote it", "a", &KV{"9", 7}, "nobody wrote that value"},
		{"at the wrong revision", "a", &KV{"2", 7}, "written @6, not @7"},
		{"foreign key", "z", &KV{"1", 5}, "nobody wrote that value"},
	} {
		final := map[string]KV{}
		for k, v := range good {
			final[k] = v
		}
		delete(final, tc.key)
		if tc.kv != nil {
			final[tc.key] = *tc.kv
		}
		err := Durable("n1", writes, final)
		var v *Violation
		if !errors.As(err, &v) || !strings.Contains(v.What, tc.want) || !strings.Contains(v.What, `node n1: key "`+tc.key+`"`) {
			t.Errorf("%s: %v, want a violation of key %s saying %q", tc.name, err, tc.key, tc.want)
		}
	}
}

// Writes acknowledged at one revision were batched into one raft entry,
// in an order the revisions do not tell, so the key may hold what any of
// them left (fault suite seed 795682147604: a put and a delete of k/0 both
// acked @795, the key absent on every node, was reported lost); but it
// must hold what one of them left.
func TestDurableAcceptsWhatAnyWriteOfTheLastEntryLeft(t *testing.T) {
	writes := []Write{
		acked("a", "0", 2), acked("a", "1", 5), {Key: "a", Deleted: true, Acked: true, Rev: 5},
		acked("b", "0", 2), {Key: "b", Deleted: true, Acked: true, Rev: 5}, acked("b", "1", 5),
		acked("c", "1", 5), acked("c", "2", 5),
	}
	for _, final := range []map[string]KV{
		{"b": {"1", 5}, "c": {"1", 5}},
		{"a": {"1", 5}, "c": {"2", 5}},
	} {
		if err := Durable("n0", writes, final); err != nil {
			t.Errorf("final %v: %v", final, err)
		}
	}
	for _, tc := range []struct {
		name  string
		final map[string]KV
		want  string
	}{
		{"older value", map[string]KV{"a": {"0", 2}, "b": {"1", 5}, "c": {"1", 5}}, `key "a" is 0@2: the acknowledged put a=1 acked @5 is lost`},
		{"vanished", map[string]KV{"b": {"1", 5}}, `key "c" is absent: the acknowledged put c=1 acked @5 is lost`},
	} {
		err := Durable("n0", writes, tc.final)
		var v *Violation
		if !errors.As(err, &v) || !strings.Contains(v.What, tc.want) {
			t.Errorf("%s: %v, want a violation saying %q", tc.name, err, tc.want)
		}
	}
}
