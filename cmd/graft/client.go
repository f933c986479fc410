package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/urfave/cli/v2"

	"github.com/graftcm/graft/api"
)

// clientTimeout bounds a client command's request (the agent bounds its
// own work sooner: api.DefaultTimeout).
const clientTimeout = 30 * time.Second

// checkoutDataDir is the data dir `make run` gives the agent, in the
// checkout; client commands find that agent from the checkout and below.
const checkoutDataDir = ".graft"

// clientFlags are the flags of the commands that talk to a running agent.
func clientFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "api", EnvVars: []string{"GRAFT_API"},
			Usage: "the agent's local API: its unix socket `PATH`, or http://127.0.0.1:PORT (default: graft.sock in --data-dir)"},
		&cli.StringFlag{Name: "data-dir", Value: defaultDataDir(), EnvVars: []string{"GRAFT_DATA_DIR"},
			Usage: "the data dir of the agent to talk to (its API socket is there); given neither this nor --api, " +
				"an agent running on a " + checkoutDataDir + " dir (make run's) here or in a parent directory, else this default"},
	}
}

// agentNamed reports whether the flags (or their environment variables)
// name the agent, rather than leave it to be looked for.
func agentNamed(c *cli.Context) bool { return c.IsSet("api") || c.IsSet("data-dir") }

// agentAddr returns the address of the agent's API: --api; else the socket
// in --data-dir when given; else the socket of an agent running on the
// nearest .graft dir (make run's) in the working directory or a parent;
// else the socket in the default data dir.
func agentAddr(c *cli.Context) (string, error) {
	if addr := c.String("api"); addr != "" {
		return addr, nil
	}
	if !agentNamed(c) {
		if wd, err := os.Getwd(); err == nil {
			if sock, ok := findCheckoutAgent(wd); ok {
				return sock, nil
			}
		}
	}
	if c.String("data-dir") == "" {
		return "", usageError("--data-dir is empty (or give --api)")
	}
	return filepath.Join(c.String("data-dir"), apiSocket), nil
}

// findCheckoutAgent returns the socket of an agent running on a .graft data
// dir in dir or the nearest of its parents that has one. Only a data dir
// of this user's, closed to others as graft makes it, counts: a socket in
// somebody else's would receive what this user writes.
func findCheckoutAgent(dir string) (string, bool) {
	for {
		dd := filepath.Join(dir, checkoutDataDir)
		if fi, err := os.Stat(dd); err == nil && fi.IsDir() && ownedPrivate(fi) {
			sock := filepath.Join(dd, apiSocket)
			if conn, err := net.DialTimeout("unix", sock, time.Second); err == nil {
				conn.Close()
				return sock, true
			}
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", false
		}
		dir = parent
	}
}

// ownedPrivate reports whether fi belongs to this process's user and is
// closed to everyone else.
func ownedPrivate(fi os.FileInfo) bool {
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && int(st.Uid) == os.Geteuid() && fi.Mode().Perm()&0o077 == 0
}

// dialAgent returns a client of the agent the flags name or agentAddr
// finds.
func dialAgent(c *cli.Context) (*api.Client, error) {
	addr, err := agentAddr(c)
	if err != nil {
		return nil, err
	}
	client, err := api.NewClient(addr)
	if err != nil {
		return nil, usageError("--api: %v", err)
	}
	return client, nil
}

// withClient runs fn with a client of the agent, its request bounded by
// clientTimeout, and explains the error of an agent that is not there.
func withClient(c *cli.Context, fn func(ctx context.Context, client *api.Client) error) error {
	client, err := dialAgent(c)
	if err != nil {
		return err
	}
	defer client.Close()
	ctx, cancel := context.WithTimeout(c.Context, clientTimeout)
	defer cancel()
	return agentError(c, fn(ctx, client))
}

// agentError adds what to do to the error of an agent that does not
// answer: where else graft looked, if the flags named no agent.
func agentError(c *cli.Context, err error) error {
	switch {
	case !errors.Is(err, api.ErrNoAgent):
		return err
	case agentNamed(c):
		return fmt.Errorf("%w (is the agent running? start it with `graft run`, or point --data-dir or --api at it)", err)
	}
	where := "this directory"
	if wd, werr := os.Getwd(); werr == nil {
		where = wd
	}
	return fmt.Errorf("%w, nor on a %s dir (make run's) in %s or a parent directory (is the agent running? "+
		"start one with `graft run` or, in a checkout, `make run`; for another, give --data-dir or --api: "+
		"one started with --tmp-prefix logs its socket)", err, checkoutDataDir, where)
}

// formatValue renders a value for a `key=value` line: as it is if it is
// one line of printable UTF-8 text, else Go-quoted ("a\nb", "a\tb",
// "\xff"). Printable is unicode.IsPrint: letters, marks, numbers,
// punctuation, symbols and the ASCII space; a tab or any other control or
// space character is not. A value that starts with a double quote is
// quoted too, so that a quoted value always means one printed quoted.
func formatValue(v []byte) string {
	if !utf8.Valid(v) || bytes.HasPrefix(v, []byte{'"'}) {
		return strconv.Quote(string(v))
	}
	for _, r := range string(v) {
		if !unicode.IsPrint(r) {
			return strconv.Quote(string(v))
		}
	}
	return string(v)
}

// jsonFlag asks a command for JSON output.
func jsonFlag() cli.Flag {
	return &cli.BoolFlag{Name: "json", Usage: "print JSON objects, as the API returns them"}
}

// linearizableFlag asks for a linearizable read.
func linearizableFlag() cli.Flag {
	return &cli.BoolFlag{Name: "linearizable", Usage: "reflect every write committed anywhere before the read (asks the leader)"}
}

// readOptions are the read options the flags ask for, and info's report.
func readOptions(c *cli.Context, info *api.ReadInfo) []api.ReadOption {
	opts := []api.ReadOption{api.ReportInfo(info)}
	if c.Bool("linearizable") {
		opts = append(opts, api.Linearizable())
	}
	return opts
}

// staleNote explains, in the reads' help, the warning of warnIfStale.
func staleNote() string {
	return "The answer comes from the agent's copy of the state. If the agent's node has not\n" +
		"heard from a cluster leader for more than " + staleAfter.String() + " (it is cut off, or the cluster has no\n" +
		"leader), a warning on stderr says how long ago it last did: the answer may miss writes\n" +
		"made since on other nodes. --linearizable reads through the leader instead, and fails\n" +
		"without one."
}

// staleAfter is how long the agent's node may have gone without hearing
// from a leader before a local read's answer is flagged as possibly stale.
// A follower hears from its leader several times a heartbeat timeout (1s
// by default), so this is many missed heartbeats: the node is cut off, or
// the cluster has no leader.
const staleAfter = 3 * time.Second

// warnIfStale warns on stderr, never stdout, that an answer may be stale
// when the node that served it had not heard from a leader for staleAfter,
// saying what it may miss.
func warnIfStale(e *env, contact *api.Contact, misses string) {
	if contact == nil || !contact.Stale(staleAfter) {
		return
	}
	if d, ok := contact.LastContact(); ok {
		fmt.Fprintf(e.stderr, "graft: warning: the agent's node last heard from a cluster leader %.1fs ago; %s\n", d.Seconds(), misses)
	} else {
		fmt.Fprintf(e.stderr, "graft: warning: the agent's node has not heard from a cluster leader since it started; %s\n", misses)
	}
}

// warnIfStaleRead is warnIfStale for a read. A linearizable read went
// through the leader: it is not stale.
func warnIfStaleRead(e *env, c *cli.Context, contact *api.Contact) {
	if !c.Bool("linearizable") {
		warnIfStale(e, contact, "the answer may miss writes made on other nodes (--linearizable reads through the leader)")
	}
}
