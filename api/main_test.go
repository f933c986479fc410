package api

import (
	"os"
	"testing"

	"go.uber.org/goleak"
)

// TestMain doubles, with foreignServeEnv set, as a server that answers on
// a unix socket as an agent would (see serveAs).
func TestMain(m *testing.M) {
	if sock := os.Getenv(foreignServeEnv); sock != "" {
		os.Exit(serveImpostor(sock))
	}
	goleak.VerifyTestMain(m)
}
