package resources

import (
	"strings"
	"sync"
	"testing"
)

// sentRuntime is a test runtime that keeps what the resource sent.
type sentRuntime struct {
	*testRuntime
	mu   sync.Mutex
	sent []map[string]any
}

func newSentRuntime(kind, name string) *sentRuntime {
	s := &sentRuntime{testRuntime: newTestRuntime(kind, name)}
	s.Send = func(v map[string]any) error {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.sent = append(s.sent, v)
		return nil
	}
	return s
}

func (s *sentRuntime) last(t *testing.T, key string) string {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.sent) == 0 {
		t.Fatal("nothing sent")
	}
	v, _ := s.sent[len(s.sent)-1][key].(string)
	return v
}

func TestPasswordGeneratesSendsAndRegeneratesOnRefresh(t *testing.T) {
	rt := newSentRuntime("password", "p")
	p := &Password{Length: 20}
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	if err := p.Init(&rt.Runtime); err != nil {
		t.Fatal(err)
	}
	converge(t, p, false, false) // noop: would generate, generates nothing
	if len(rt.sent) != 0 {
		t.Fatal("apply=false sent a password")
	}
	converge(t, p, true, false)
	first := rt.last(t, "password")
	if len(first) != 20 || strings.Trim(first, passwordAlphabet) != "" {
		t.Fatalf("password %q: want 20 characters from the alphabet", first)
	}
	converge(t, p, true, true) // no refresh: same password, sent again
	if got := rt.last(t, "password"); got != first {
		t.Error("the password changed without a refresh")
	}
	rt.refresh.Store(true)
	converge(t, p, true, false)
	if got := rt.last(t, "password"); got == first || len(got) != 20 {
		t.Errorf("refresh did not regenerate the password: %q", got)
	}
	if (&Password{}).length() != 64 {
		t.Error("default length is not 64")
	}
}

// Issue 9, item 4: mgmt accepts any password length and its saved and
// checkrecovery keys; graft refused lengths under 8 and the keys.
func TestPasswordParamsMgmtAcceptsAreAccepted(t *testing.T) {
	rt := newSentRuntime("password", "p")
	p := &Password{Length: 4}
	if err := p.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	if err := p.Init(&rt.Runtime); err != nil {
		t.Fatal(err)
	}
	converge(t, p, true, false)
	if got := rt.last(t, "password"); len(got) != 4 {
		t.Errorf("generated %q, want 4 characters", got)
	}
	keys := p.LegacyKeys()
	for _, k := range []string{"saved", "checkrecovery"} {
		if keys[k] == "" {
			t.Errorf("LegacyKeys()[%q] is empty, want the reason it is ignored", k)
		}
	}
}

// Every character of the alphabet turns up, about equally often.
func TestPasswordCharactersAreUniform(t *testing.T) {
	pw, err := generatePassword(62 * 400)
	if err != nil {
		t.Fatal(err)
	}
	counts := map[rune]int{}
	for _, r := range pw {
		counts[r]++
	}
	if len(counts) != len(passwordAlphabet) {
		t.Fatalf("%d distinct characters, want %d", len(counts), len(passwordAlphabet))
	}
	for r, n := range counts {
		if n < 300 || n > 500 { // mean 400; this is over 5 standard deviations
			t.Errorf("%q appeared %d times in 24800, want about 400", r, n)
		}
	}
}
