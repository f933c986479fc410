package resources

import (
	"context"
	"crypto/rand"
	"errors"
	"sync"

	"github.com/graftcm/graft/engine"
)

// passwordAlphabet is what generated passwords are made of: letters and
// digits, safe in config files and shell words alike.
const passwordAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

// defaultPasswordLength is mgmt's default.
const defaultPasswordLength = 64

// Password generates a random password and sends it (key "password") to the
// resources that receive it, such as a file's content. It is generated the
// first time the resource runs and again on every refresh. It lives only in
// the agent's memory: graft never writes it to disk itself, so a restarted
// agent generates a new one.
type Password struct {
	// Length is the number of characters; zero means 64. Any other length
	// is taken as given, as mgmt takes it.
	Length uint16 `yaml:"length"`

	rt       *engine.Runtime
	mu       sync.Mutex
	password string
}

func (p *Password) length() int {
	if p.Length == 0 {
		return defaultPasswordLength
	}
	return int(p.Length)
}

// Sends declares the generated password.
func (p *Password) Sends() map[string]any { return map[string]any{"password": ""} }

// Validate accepts every length, as mgmt does.
func (p *Password) Validate() error { return nil }

// LegacyKeys returns the keys mgmt's password resource takes that graft
// accepts and ignores, each with the reason.
func (p *Password) LegacyKeys() map[string]string {
	return map[string]string{
		"saved":         "graft keeps the password in memory only, never on disk; a restarted agent generates a new one",
		"checkrecovery": "graft stores no password to check",
	}
}

// Init keeps the runtime.
func (p *Password) Init(rt *engine.Runtime) error { p.rt = rt; return nil }

// Cleanup forgets the password.
func (p *Password) Cleanup() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.password = ""
	return nil
}

// Watch has nothing to watch.
func (p *Password) Watch(context.Context) error {
	p.rt.Running()
	return nil
}

// CheckApply generates the password if there is none yet or a refresh
// asks for a new one, and sends the current one.
func (p *Password) CheckApply(_ context.Context, apply bool) (bool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	checkOK := true
	if p.password == "" || p.rt.Refresh() {
		if !apply {
			p.rt.Logger.Info("would generate a new password", "length", p.length())
			return false, nil
		}
		pw, err := generatePassword(p.length())
		if err != nil {
			return false, err
		}
		p.password = pw
		p.rt.Logger.Info("generated a new password", "length", len(pw))
		checkOK = false
	}
	return checkOK, p.rt.Send(map[string]any{"password": p.password})
}

// generatePassword draws n characters uniformly from passwordAlphabet.
func generatePassword(n int) (string, error) {
	const a = len(passwordAlphabet)
	// Reject bytes above the largest multiple of a, so every character is
	// equally likely.
	limit := byte(256 - 256%a)
	out := make([]byte, 0, n)
	buf := make([]byte, 2*n)
	for len(out) < n {
		if _, err := rand.Read(buf); err != nil {
			return "", errors.Join(errors.New("password: no randomness"), err)
		}
		for _, b := range buf {
			if b < limit && len(out) < n {
				out = append(out, passwordAlphabet[int(b)%a])
			}
		}
	}
	return string(out), nil
}
