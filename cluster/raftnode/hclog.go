package raftnode

import (
	"context"
	"fmt"
	"io"
	"log"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/graftcm/graft/cluster/internal/loglimit"
	"github.com/hashicorp/go-hclog"
)

// Raft logs a line at every failed attempt to reach a peer, each with its
// backoff: one follower down made about 30 ERROR lines in 10 s ("failed to
// heartbeat to", "failed to appendEntries to"); a node that lost its
// quorum repeats "entering candidate state" and "pre-vote campaign failed"
// at every election timeout for as long as the outage lasts. Its info
// lines, warnings and errors are therefore rate-limited as the gossip
// port's lines are: a message about one peer at most once per
// raftLogWindow, and the next line of that message that is logged says how
// many were suppressed. Debug lines are not limited, and neither are the
// info lines of raftChanges.
const (
	raftLogWindow = 10 * time.Second
	// raftLogPeers bounds the peers one message is logged for per window:
	// raft's servers are few (the voters and some spares).
	raftLogPeers = 64
)

// raftChanges are the info lines of raft that each mark a change of this
// node's role or of the cluster's configuration: every one is logged.
func raftChanges() []string {
	return []string{"entering follower state", "entering leader state", "election won", "initial configuration",
		"updating configuration", "added peer, starting replication", "removed peer, stopping replication",
		"removed ourself, transitioning to follower", "removed ourself, shutting down"}
}

// limited reports whether a line of raft's at lvl with msg is rate-limited.
func limited(lvl slog.Level, msg string) bool {
	return lvl >= slog.LevelWarn || (lvl == slog.LevelInfo && !slices.Contains(raftChanges(), msg))
}

// hclogAdapter sends raft's logs (hclog) to a slog.Logger.
type hclogAdapter struct {
	log   *slog.Logger
	name  string
	args  []any
	level hclog.Level
	notes *loglimit.Limiter // shared by the adapter's With and Named copies
}

func newHclog(l *slog.Logger, name string) hclog.Logger {
	return newHclogAt(l, name, time.Now)
}

// newHclogAt is newHclog whose rate limit reads the time from now.
func newHclogAt(l *slog.Logger, name string, now func() time.Time) *hclogAdapter {
	return &hclogAdapter{log: l, name: name, level: hclog.Debug, notes: loglimit.NewSized(now, raftLogWindow, raftLogPeers)}
}

func (h *hclogAdapter) slogLevel(level hclog.Level) slog.Level {
	switch level {
	case hclog.Trace, hclog.Debug:
		return slog.LevelDebug
	case hclog.Info:
		return slog.LevelInfo
	case hclog.Warn:
		return slog.LevelWarn
	default:
		return slog.LevelError
	}
}

func (h *hclogAdapter) Log(level hclog.Level, msg string, args ...any) {
	if level < h.level || level == hclog.Off {
		return
	}
	all := make([]any, 0, len(h.args)+len(args)+2)
	all = append(all, "component", h.name)
	all = append(all, h.args...)
	all = append(all, args...)
	for i, a := range all {
		// hclog.Format values are a format string and its arguments.
		if f, ok := a.(hclog.Format); ok && len(f) > 0 {
			if format, ok := f[0].(string); ok {
				all[i] = fmt.Sprintf(format, f[1:]...)
			}
		}
	}
	lvl := h.slogLevel(level)
	if limited(lvl, msg) && h.notes != nil {
		ok, suppressed := h.notes.Allow(h.name+": "+msg, peerOf(all))
		if !ok {
			return
		}
		if suppressed > 0 {
			all = append(all, loglimit.KeySuppressed, suppressed)
		}
	}
	h.log.Log(context.Background(), lvl, msg, all...)
}

// peerOf names the peer a raft log line is about: the values of the
// attributes raft names peers with, or "" for a line about no peer.
func peerOf(args []any) string {
	var peer []string
	for i := 0; i+1 < len(args); i += 2 {
		switch args[i] {
		case "peer", "server-id", "target", "candidate", "from", "id":
			peer = append(peer, fmt.Sprint(args[i+1]))
		}
	}
	return strings.Join(peer, " ")
}

func (h *hclogAdapter) Trace(msg string, args ...any) { h.Log(hclog.Trace, msg, args...) }
func (h *hclogAdapter) Debug(msg string, args ...any) { h.Log(hclog.Debug, msg, args...) }
func (h *hclogAdapter) Info(msg string, args ...any)  { h.Log(hclog.Info, msg, args...) }
func (h *hclogAdapter) Warn(msg string, args ...any)  { h.Log(hclog.Warn, msg, args...) }
func (h *hclogAdapter) Error(msg string, args ...any) { h.Log(hclog.Error, msg, args...) }

func (h *hclogAdapter) IsTrace() bool { return h.level <= hclog.Trace }
func (h *hclogAdapter) IsDebug() bool { return h.level <= hclog.Debug }
func (h *hclogAdapter) IsInfo() bool  { return h.level <= hclog.Info }
func (h *hclogAdapter) IsWarn() bool  { return h.level <= hclog.Warn }
func (h *hclogAdapter) IsError() bool { return h.level <= hclog.Error }

func (h *hclogAdapter) ImpliedArgs() []any { return h.args }

func (h *hclogAdapter) With(args ...any) hclog.Logger {
	c := *h
	c.args = append(append([]any{}, h.args...), args...)
	return &c
}

func (h *hclogAdapter) Name() string { return h.name }

func (h *hclogAdapter) Named(name string) hclog.Logger {
	c := *h
	if c.name != "" {
		c.name += "." + name
	} else {
		c.name = name
	}
	return &c
}

func (h *hclogAdapter) ResetNamed(name string) hclog.Logger {
	c := *h
	c.name = name
	return &c
}

func (h *hclogAdapter) SetLevel(level hclog.Level) { h.level = level }
func (h *hclogAdapter) GetLevel() hclog.Level      { return h.level }

func (h *hclogAdapter) StandardLogger(*hclog.StandardLoggerOptions) *log.Logger {
	return log.New(h.StandardWriter(nil), "", 0)
}

func (h *hclogAdapter) StandardWriter(*hclog.StandardLoggerOptions) io.Writer {
	return writerFunc(func(p []byte) (int, error) {
		h.Info(strings.TrimSpace(string(p)))
		return len(p), nil
	})
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
