package api

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// foreignServeEnv makes the test binary serve, on the unix socket it
// names, an HTTP server that answers every request as an agent would and
// prints each request's method and path on stdout, until stdin closes.
const foreignServeEnv = "GRAFT_API_TEST_SERVE"

// serveImpostor is the test binary's life with foreignServeEnv set.
func serveImpostor(sock string) int {
	ln, err := ListenUnix(sock)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	out := make(chan string, 16)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		out <- fmt.Sprintf("got %s %s %q", r.Method, r.URL.Path, body)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"host":"impostor","rev":1}`)
	})}
	go srv.Serve(ln)
	fmt.Println("ready")
	closed := make(chan struct{})
	go func() {
		io.Copy(io.Discard, os.Stdin)
		close(closed)
	}()
	for {
		select {
		case line := <-out:
			fmt.Println(line)
		case <-closed:
			srv.Close()
			return 0
		}
	}
}

// impostor is the test binary serving a socket as another user.
type impostor struct {
	sock  string
	stdin io.Closer
	lines chan string // its stdout, closed at its end
	cmd   *exec.Cmd
}

// serveAs runs, as user uid, a server that answers on a unix socket as an
// agent would, and returns its socket. The test binary is copied where
// that user can run it: the go tool keeps it in a directory of ours alone.
func serveAs(t *testing.T, uid int) *impostor {
	t.Helper()
	dir, err := os.MkdirTemp("", "graft-peercred-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	bin := filepath.Join(dir, "api.test")
	self, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	sockDir := filepath.Join(dir, "home")
	if err := errors.Join(os.Chmod(dir, 0o755), os.WriteFile(bin, self, 0o755),
		os.Mkdir(sockDir, 0o700), os.Chown(sockDir, uid, uid)); err != nil {
		t.Fatal(err)
	}
	im := &impostor{sock: filepath.Join(sockDir, "graft.sock"), lines: make(chan string, 16)}
	im.cmd = exec.Command(bin)
	im.cmd.Env = []string{foreignServeEnv + "=" + im.sock, "GORACE=atexit_sleep_ms=0"}
	im.cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(uid)}}
	im.cmd.Stderr = os.Stderr
	stdin, err := im.cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := im.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := im.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	im.stdin = stdin
	go func() {
		defer close(im.lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			im.lines <- sc.Text()
		}
	}()
	t.Cleanup(func() {
		im.cmd.Process.Kill()
		for range im.lines {
		}
		im.cmd.Wait()
	})
	select {
	case l := <-im.lines:
		if l != "ready" {
			t.Fatalf("the server run as uid %d said %q, want ready", uid, l)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("the server run as uid %d is not ready after 30s", uid)
	}
	return im
}

// stop stops the server and returns what it received.
func (im *impostor) stop(t *testing.T) []string {
	t.Helper()
	im.stdin.Close()
	var got []string
	deadline := time.After(30 * time.Second)
	for {
		select {
		case l, ok := <-im.lines:
			if !ok {
				return got
			}
			got = append(got, l)
		case <-deadline:
			t.Fatal("the server run as another user did not stop within 30s")
		}
	}
}

// A client (root's, say) refuses to talk through a socket another user's
// process serves, naming the socket and that user: a path the client
// trusted (a .graft symlink checked and then repointed, a --api typed) led
// to an attacker's socket, and the attacker received what root wrote.
func TestClientRefusesASocketServedByAnotherUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: the test serves a socket as another user (uid 65534), and only root can")
	}
	im := serveAs(t, 65534)
	c, err := NewClient(im.sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	check := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, ErrForeignAgent) || errors.Is(err, ErrNoAgent) ||
			!strings.Contains(err.Error(), im.sock) || !strings.Contains(err.Error(), "uid 65534") {
			t.Errorf("%s: %v; want ErrForeignAgent naming %s and uid 65534", what, err, im.sock)
		}
	}
	_, err = c.Put(ctx, "secret", []byte("hunter2"))
	check("put", err)
	_, err = c.Status(ctx)
	check("status", err)
	_, err = c.Watch(ctx, "", 0)
	check("watch", err)
	_, err = DialUnix(ctx, im.sock)
	check("DialUnix", err)
	if got := im.stop(t); len(got) > 0 {
		t.Errorf("the other user's server received %q", got)
	}
}

// A client reaches an agent whose socket's path is longer than the 108
// bytes a unix socket address holds: `make run` in a deep checkout
// listens on the relative .graft/graft.sock, and a client that found it by
// its absolute path failed with "invalid argument".
func TestClientReachesASocketWhosePathIsLongerThanASocketAddress(t *testing.T) {
	deep := filepath.Join(t.TempDir(), strings.Repeat("d", 60), strings.Repeat("e", 60))
	if err := os.MkdirAll(deep, 0o700); err != nil {
		t.Fatal(err)
	}
	t.Chdir(deep)
	ln, err := ListenUnix("graft.sock")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(Status{Host: "deep"})
	})}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	sock := filepath.Join(deep, "graft.sock")
	if len(sock) <= maxSocketPath {
		t.Fatalf("the path %s is only %d bytes", sock, len(sock))
	}
	c, err := NewClient(sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	st, err := c.Status(t.Context())
	if err != nil || st.Host != "deep" {
		t.Errorf("status through the %d-byte path: %+v, %v", len(sock), st, err)
	}
	c.Close()
	srv.Close()
	<-served
	if _, err := c.Status(t.Context()); !errors.Is(err, ErrNoAgent) || !strings.Contains(err.Error(), sock) {
		t.Errorf("with nothing listening: %v, want ErrNoAgent naming %s", err, sock)
	}
}
