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
