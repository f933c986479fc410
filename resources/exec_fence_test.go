package resources

import (
	"slices"
	"strings"
	"testing"
)

func TestFenceEnvName(t *testing.T) {
	for id, want := range map[string]string{
		"db":      "GRAFT_FENCE_DB",
		"db-1":    "GRAFT_FENCE_DB_1",
		"Db_1":    "GRAFT_FENCE_DB_1",
		"ns:x.y":  "GRAFT_FENCE_NS_X_Y",
		"café":    "GRAFT_FENCE_CAF__", // two bytes outside A-Z0-9
		"a b/c=d": "GRAFT_FENCE_A_B_C_D",
	} {
		if got := fenceEnvName(id); got != want {
			t.Errorf("fenceEnvName(%q) = %q, want %q", id, got, want)
		}
	}
}

// envLines runs e's cmd (`env`) with the given fences and returns the
// GRAFT_FENCE_ and A variables it saw, sorted.
func envLines(t *testing.T, e *Exec, fences map[string]uint64) []string {
	t.Helper()
	e, p := newTestExec(t, e)
	e.rt.Fences = func() map[string]uint64 { return fences }
	if _, err := e.CheckApply(t.Context(), true); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, line := range strings.Split(p.logs.attr(t, "cmd ran", "stdout").String(), "\n") {
		if strings.HasPrefix(line, fenceEnvPrefix) || strings.HasPrefix(line, "A=") {
			got = append(got, line)
		}
	}
	slices.Sort(got)
	return got
}

// cmd and ifcmd get the fencing token of each cluster semaphore slot their
// CheckApply holds as GRAFT_FENCE_<ID>, with an inherited environment or
// an exact one (where the token replaces a stale value of Env's); without
// slots they get none.
func TestExecCommandGetsFencingTokens(t *testing.T) {
	t.Setenv("GRAFT_FENCE_OLD", "inherited")
	fences := map[string]uint64{"db": 7, "ns/lock-2": 12}
	got := envLines(t, &Exec{name: "x", Cmd: "env", IfCmd: `sh -c 'test "$GRAFT_FENCE_DB" = 7'`}, fences)
	if want := []string{"GRAFT_FENCE_DB=7", "GRAFT_FENCE_NS_LOCK_2=12", "GRAFT_FENCE_OLD=inherited"}; !slices.Equal(got, want) {
		t.Errorf("inherited environment: %q, want %q", got, want)
	}
	got = envLines(t, &Exec{name: "x", Cmd: "env", Env: map[string]string{"A": "1", "GRAFT_FENCE_DB": "stale"}}, fences)
	if want := []string{"A=1", "GRAFT_FENCE_DB=7", "GRAFT_FENCE_NS_LOCK_2=12"}; !slices.Equal(got, want) {
		t.Errorf("exact environment: %q, want %q", got, want)
	}
	got = envLines(t, &Exec{name: "x", Cmd: "env", Env: map[string]string{"A": "1"}}, nil)
	if want := []string{"A=1"}; !slices.Equal(got, want) {
		t.Errorf("no slots: %q, want %q", got, want)
	}
}
