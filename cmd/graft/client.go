package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/urfave/cli/v2"

	"github.com/graftcm/graft/api"
)

// clientTimeout bounds a client command's request (the agent bounds its
// own work sooner: api.DefaultTimeout).
const clientTimeout = 30 * time.Second

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

// agentTarget is the agent a client command talks to, and how it was
// found.
type agentTarget struct {
	addr   string
	named  bool           // by the flags (or their environment variables)
	search checkoutSearch // looking for make run's agent, if not named
}

// findAgent returns the agent's API: --api; else the socket in --data-dir
// when given; else the socket of an agent running on the nearest .graft
// dir (make run's) in the working directory or a parent; else the socket
// in the default data dir.
func findAgent(c *cli.Context) (agentTarget, error) {
	t := agentTarget{named: agentNamed(c)}
	if t.addr = c.String("api"); t.addr != "" {
		return t, nil
	}
	if !t.named {
		wd, err := os.Getwd()
		if err != nil {
			t.search.stopped = fmt.Sprintf("did not look for a %s dir: %v", checkoutDataDir, err)
		} else if t.search = findCheckoutAgent(c.Context, wd); t.search.sock != "" {
			t.addr = t.search.sock
			return t, nil
		}
	}
	if c.String("data-dir") == "" {
		return t, usageError("--data-dir is empty (or give --api)")
	}
	t.addr = filepath.Join(c.String("data-dir"), apiSocket)
	return t, nil
}

// dialAgent returns a client of the agent the flags name or findAgent
// finds, and that agent.
func dialAgent(c *cli.Context) (*api.Client, agentTarget, error) {
	t, err := findAgent(c)
	if err != nil {
		return nil, t, err
	}
	client, err := api.NewClient(t.addr)
	if err != nil {
		return nil, t, usageError("--api: %v", err)
	}
	return client, t, nil
}

// withClient runs fn with a client of the agent, its request bounded by
// clientTimeout, and explains the error of an agent that is not there.
func withClient(c *cli.Context, fn func(ctx context.Context, client *api.Client) error) error {
	client, t, err := dialAgent(c)
	if err != nil {
		return err
	}
	defer client.Close()
	ctx, cancel := context.WithTimeout(c.Context, clientTimeout)
	defer cancel()
	return t.explain(fn(ctx, client))
}

// explain adds what to do to the error of an agent that does not answer:
// if the flags named no agent, what the search for make run's found.
func (t agentTarget) explain(err error) error {
	switch {
	case !errors.Is(err, api.ErrNoAgent):
		return err
	case t.named:
		return fmt.Errorf("%w (is the agent running? start it with `graft run`, or point --data-dir or --api at it)", err)
	}
	return t.search.explain(err)
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
