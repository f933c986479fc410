package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/graftcm/graft/cluster"
	"github.com/graftcm/graft/cluster/clusterkey"
	"github.com/graftcm/graft/internal/atomicfile"
)

// tokenFile holds the cluster key in the data dir, mode 0600.
const tokenFile = "token"

// joinCheckAfter is how long a node given --join may stay alone before it
// says what may be wrong.
const joinCheckAfter = 5 * time.Second

// errNoKey is the error of a node told to join a cluster without its key.
var errNoKey = errors.New("joining a cluster needs its key: --token or GRAFT_TOKEN (see the first node's log)")

// clusterKey is the agent's cluster key and where it is kept.
type clusterKey struct {
	tok     clusterkey.Token
	path    string // "" for the in-memory key of a one-shot run
	created bool   // made by this start: this node starts a new cluster
	// replaced is where the key the data dir held before --token's was
	// kept, when this start adopted --token's ("" if it did not).
	replaced string
	previous clusterkey.Token // that key
}

// loadClusterKey returns the cluster key of the node hostname. A key given
// with --token is kept in the data dir from then on; a data dir that holds
// another one adopts --token's if its node never had a peer (the old key
// is kept beside it, see adoptKey), and is refused otherwise. That is
// decided from the data dir alone, before the node's server starts: once
// it runs, it may meet peers at any moment. Without --token the data
// dir's key is used, and a node that joins nobody makes one if there is
// none (it starts a new cluster). A node told to join, or to bootstrap
// with others, cannot make one: its cluster has a key already; nor can a
// node that has had peers (see noKeyRefusal).
func loadClusterKey(o clusterOptions, dir, hostname string) (clusterKey, error) {
	path := filepath.Join(dir, tokenFile)
	_, err := os.Lstat(path)
	exists := err == nil
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return clusterKey{}, fmt.Errorf("cluster key: %w", err)
	}
	switch {
	case o.token != nil && !exists:
		if err := clusterkey.WriteFile(path, *o.token); err != nil {
			return clusterKey{}, err
		}
		return clusterKey{tok: *o.token, path: path}, nil
	case o.token == nil && !exists && len(o.join) > 0:
		return clusterKey{}, &exitError{code: exitUsage, err: errNoKey}
	case o.token == nil && !exists && o.bootstrapExpect > 0:
		return clusterKey{}, usageError("--bootstrap-expect: the nodes that start a cluster together need one key: " +
			"make it with `graft keygen` and give it to each with --token or GRAFT_TOKEN")
	case o.token == nil && !exists:
		// A new key is one nobody else holds: a node that had peers could
		// never be added back to their cluster with it, and does not
		// start one of its own.
		h, err := cluster.ReadHistory(dir, hostname)
		if err != nil {
			return clusterKey{}, fmt.Errorf("cluster key: %s does not exist, and whether this node had peers "+
				"cannot be told: %w", path, err)
		}
		if h.HadPeers() {
			return clusterKey{}, noKeyRefusal(dir, h)
		}
	}
	tok, created, err := clusterkey.LoadOrCreate(path)
	if errors.Is(err, clusterkey.ErrInvalid) {
		return clusterKey{}, fmt.Errorf("%w: remove it, and start with the cluster's key in GRAFT_TOKEN "+
			"(or --token; a node that starts a cluster alone makes a new one)", err)
	}
	if err != nil {
		return clusterKey{}, err
	}
	if o.token != nil && !tok.Equal(*o.token) {
		h, err := cluster.ReadHistory(dir, hostname)
		if err != nil {
			return clusterKey{}, fmt.Errorf("cluster key: cannot tell whether this node had peers: %w", err)
		}
		if h.HadPeers() {
			return clusterKey{}, keyRefusal(dir, tok, *o.token, h)
		}
		return adoptKey(path, tok, *o.token)
	}
	return clusterKey{tok: tok, path: path, created: created}, nil
}

// keyRefusal is the error of a data dir whose node has had peers (h
// says how it is known) under another key than the one given: it says how
// to stay, and how to move.
func keyRefusal(dir string, held, given clusterkey.Token, h cluster.History) error {
	return fmt.Errorf("cluster key: %s holds the key of this node's cluster (fingerprint %s), not the one given "+
		"(fingerprint %s), and this node has had peers under it (%s). To stay in that cluster, give its key "+
		"(or none: the data dir keeps it). To move this node to the other cluster, make it leave its own "+
		"(graft leave), stop it, remove %s, %s and %s, and start it with the other cluster's key and --join; "+
		"or use another --data-dir", filepath.Join(dir, tokenFile), held.Fingerprint(),
		given.Fingerprint(), h, filepath.Join(dir, "raft"),
		filepath.Join(dir, tokenFile), filepath.Join(dir, cluster.PeersFile))
}

// noKeyRefusal is the error of a data dir that holds no key, whose node
// has had peers (h says how it is known): it says how to rejoin their
// cluster, and how to start a new one instead.
func noKeyRefusal(dir string, h cluster.History) error {
	var remove []string
	if len(h.Servers) > 0 {
		remove = append(remove, filepath.Join(dir, "raft"))
	}
	if len(h.Remembered) > 0 {
		remove = append(remove, filepath.Join(dir, cluster.PeersFile))
	}
	return fmt.Errorf("cluster key: %s does not exist, but this node has had peers (%s): a new key would be "+
		"one nobody else holds, so the node could never be added back to their cluster, and it starts none of "+
		"its own. To rejoin that cluster, give its key with --token or GRAFT_TOKEN (the token file of a "+
		"member's data dir; compare the fingerprint with the key_fingerprint of `graft status` there). To "+
		"start a new cluster instead, remove %s", filepath.Join(dir, tokenFile), h, strings.Join(remove, " and "))
}

// adoptKey replaces the key at path, which keyed nothing anyone else
// holds (its node never had a peer), by tok. The old key is kept beside
// it, as token.FINGERPRINT.old, so that moving it back restores it. The
// copy is made first and the key file then replaced whole: an agent
// stopped at any point leaves a data dir with a key, the old one kept.
func adoptKey(path string, old, tok clusterkey.Token) (clusterKey, error) {
	kept := path + "." + old.Fingerprint() + ".old"
	err := clusterkey.WriteFile(kept, old)
	if errors.Is(err, fs.ErrExist) {
		// Kept by an earlier adoption (or one an agent stopped during).
		if k, rerr := readKey(kept); rerr != nil || !k.Equal(old) {
			return clusterKey{}, fmt.Errorf("cluster key: keeping the old key: %s exists and does not hold it: "+
				"move it away", kept)
		}
		err = nil
	}
	if err != nil {
		return clusterKey{}, fmt.Errorf("cluster key: keeping the old key: %w", err)
	}
	if err := atomicfile.Write(path, []byte(tok.Secret()+"\n"), 0o600, true); err != nil {
		return clusterKey{}, fmt.Errorf("cluster key: writing %s: %w", path, err)
	}
	return clusterKey{tok: tok, path: path, replaced: kept, previous: old}, nil
}

// asideKey returns the key that goes with the node's own cluster, on the
// data dir dir with key k, when it is set aside to join another cluster
// with k: the key its raft state was made under, whose fingerprint the
// state records (stateKey; see cluster.Server.StateKeyFingerprint), or,
// for a state that records none, the key this run adopted k in place of,
// if it did. It returns nil, and why, when that key is not known, is kept
// nowhere (the data dir keeps a key it replaced as token.FINGERPRINT.old),
// or is k itself: the key of the cluster the node joins never goes with
// its own.
func asideKey(dir string, k clusterKey, stateKey string) (*clusterkey.Token, string) {
	if stateKey == "" && k.replaced != "" {
		stateKey = k.previous.Fingerprint()
	}
	var own clusterkey.Token
	switch {
	case stateKey == "":
		return nil, "the raft state does not record the key it was made under (a graft older than this one made it)"
	case stateKey == k.tok.Fingerprint():
		return nil, "the raft state was made under the key of the cluster the node joins"
	case k.replaced != "" && stateKey == k.previous.Fingerprint():
		own = k.previous
	default:
		p := filepath.Join(dir, tokenFile+"."+stateKey+".old")
		tok, err := readKey(p)
		if err != nil || tok.Fingerprint() != stateKey {
			return nil, fmt.Sprintf("the key the raft state was made under (fingerprint %s) is not kept in %s", stateKey, p)
		}
		own = tok
	}
	if own.Equal(k.tok) {
		return nil, "the raft state was made under the key of the cluster the node joins"
	}
	return &own, ""
}

// joinHint is the command that joins another node to this one's cluster,
// with the key in GRAFT_TOKEN (a command line is visible to every user of
// the host; the environment is not). With showKey false the key is left
// for the operator to fill in from the key file.
func joinHint(o clusterOptions, gossipAddr string, tok clusterkey.Token, showKey bool) string {
	key := "<the key>"
	if showKey {
		key = tok.Secret()
	}
	cmd := "GRAFT_TOKEN=" + key + " graft run --join " + gossipAddr
	if o.clusterName != cluster.DefaultServerConfig().ClusterName {
		cmd += " --cluster-name " + shellQuote(o.clusterName)
	}
	return cmd
}

// isTerminal reports whether w is a terminal (a person reads it, and it is
// not kept in a log).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// shellQuote quotes s for a POSIX shell if it needs it.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.:/=+,@") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// showJoinCommand tells the operator of a new cluster how to join others
// to it, once, on stderr where it stands out. The key itself is shown only
// when stderr is a terminal: a log (the journal, a file) travels to places
// secrets should not, so otherwise the banner, like the log line, names the
// key file instead. With JSON logs (format, as --log-format says: the log's
// handler may be wrapped in others) the command is a field of a log
// record, so that stderr holds JSON only. A cluster whose gossip address is
// loopback (`make run`'s) cannot be joined from another host: a log record
// names the command for this host, never with the key, and no banner.
func showJoinCommand(stderr io.Writer, log *slog.Logger, format logFormat, o clusterOptions, gossipAddr string, tok clusterkey.Token, keyPath string) {
	attrs := []any{"key_file", keyPath, "key_fingerprint", tok.Fingerprint()}
	if isLoopback(gossipAddr) {
		log.Info("this node started a new cluster that only this host can reach (its gossip address is loopback); "+
			"a node on this host joins it with the join command and the key from the key file",
			append(attrs, "join_command", joinHint(o, gossipAddr, tok, false))...)
		return
	}
	showKey := isTerminal(stderr)
	if format == logJSON {
		msg := "this node started a new cluster; to add a node to it, run the join command there"
		if !showKey {
			msg += ", with the key from the key file (not shown, since this output may be logged)"
		}
		log.Info(msg, append(attrs, "join_command", joinHint(o, gossipAddr, tok, showKey))...)
		return
	}
	log.Info("this node started a new cluster with a new key; the join command is on stderr", attrs...)
	where := "The key is kept in " + keyPath + " (mode 0600)"
	if !showKey {
		where = "Copy the key from " + keyPath + " on this host (mode 0600; not shown, since this output may be logged)"
	}
	rule := strings.Repeat("=", 72)
	fmt.Fprintf(stderr, "\n%s\ngraft: this node started a new cluster. To add a node to it, run there:\n\n"+
		"    %s\n\n%s: whoever has it can join the cluster, read and write.\n%s\n\n",
		rule, joinHint(o, gossipAddr, tok, showKey), where, rule)
}

// checkJoined waits, until ctx ends, for a node given --join to reach
// another member. If it is still alone after wait, it says what may be
// wrong, once: a member that is up but holds another key answers nothing
// this node can read, which looks like no answer at all. A node that
// waits for its cluster's ID has not tried yet: its server says why.
func checkJoined(ctx context.Context, srv *cluster.Server, seeds []string, tok clusterkey.Token, wait time.Duration, log *slog.Logger) {
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	tick := time.NewTicker(wait / 10)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			if joined(srv) {
				return
			}
			continue
		case <-deadline.C:
		}
		if joined(srv) || srv.AwaitsClusterID() {
			return
		}
		log.Error("not in the cluster yet: no node given with --join has let this one in. If they are up and "+
			"reachable, this node's cluster key is not theirs: compare its fingerprint with the key_fingerprint "+
			"of `graft status` on a member, and pass the cluster's key with --token or GRAFT_TOKEN",
			"join", seeds, "fingerprint", tok.Fingerprint(), "waited", wait)
		return
	}
}

// isLoopback reports whether addr (HOST:PORT) is on a loopback address:
// its host is localhost or a loopback IP address.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// joined reports whether the server sees another node alive in the ring.
func joined(srv *cluster.Server) bool {
	self := srv.Node().ID()
	for _, m := range srv.Members() {
		if m.Name != self && m.Gossip == "alive" {
			return true
		}
	}
	return false
}
