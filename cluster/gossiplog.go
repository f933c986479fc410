package cluster

import (
	"context"
	"io"
	"log/slog"
	"net"
	"strings"

	"github.com/graftcm/graft/cluster/internal/loglimit"
)

// slogWriter turns memberlist's log lines ("[WARN] memberlist: ... from=IP:port")
// into slog records at the matching level, with the peer's address as an
// attribute, rate-limited by notes.
type slogWriter struct {
	log   *slog.Logger
	notes *loglimit.Limiter
}

var _ io.Writer = slogWriter{}

func (w slogWriter) Write(p []byte) (int, error) {
	lvl, line := splitLevel(strings.TrimSpace(string(p)))
	if lvl > slog.LevelInfo && strings.HasPrefix(line, "Failed push/pull merge: ") && strings.Contains(line, errIDUnknown.Error()) {
		// A merge this node refused until a cluster ID is known (see
		// Server.compatible), which memberlist logs as an error: it
		// passes once the ID is known.
		lvl = slog.LevelInfo
	}
	ctx := context.Background()
	if !w.log.Enabled(ctx, lvl) {
		return len(p), nil
	}
	line, from := cutSource(line)
	var args []any
	if from != "" {
		args = append(args, loglimit.KeyRemote, from)
	}
	if w.notes != nil {
		ok, suppressed := w.notes.Allow(lineReason(line, from != ""), sourceIP(from))
		if !ok {
			return len(p), nil
		}
		if suppressed > 0 {
			args = append(args, loglimit.KeySuppressed, suppressed)
		}
	}
	w.log.Log(ctx, lvl, loglimit.Truncate(line, loglimit.MaxLine), args...)
	return len(p), nil
}

// splitLevel maps memberlist's level prefix ("[WARN] memberlist: ...") to
// a slog level; lines without one are Info.
func splitLevel(line string) (slog.Level, string) {
	prefix, rest, ok := strings.Cut(line, "]")
	if !ok {
		return slog.LevelInfo, line
	}
	var lvl slog.Level
	switch prefix {
	case "[DEBUG":
		lvl = slog.LevelDebug
	case "[INFO":
		lvl = slog.LevelInfo
	case "[WARN":
		lvl = slog.LevelWarn
	case "[ERR", "[ERROR":
		lvl = slog.LevelError
	default:
		return slog.LevelInfo, line
	}
	rest = strings.TrimSpace(rest)
	return lvl, strings.TrimSpace(strings.TrimPrefix(rest, "memberlist:"))
}

// cutSource takes memberlist's "from=ADDR" (see memberlist.LogAddress) out
// of line. memberlist puts it last, after any text a peer chose.
func cutSource(line string) (rest, from string) {
	i := 0
	if !strings.HasPrefix(line, "from=") || strings.Contains(line, " from=") {
		if i = strings.LastIndex(line, " from="); i < 0 {
			return line, ""
		}
		i++
	}
	addr := line[i+len("from="):]
	end := strings.IndexByte(addr, ' ')
	if strings.HasPrefix(addr, "<") { // "<unknown address>"
		end = strings.IndexByte(addr, '>') + 1
	}
	if end <= 0 {
		end = len(addr)
	}
	return strings.TrimSpace(line[:i] + addr[end:]), addr[:end]
}

// sourceIP is the host part of addr, which keys the rate limit: a peer
// gets a new port with every connection.
func sourceIP(addr string) string {
	if host, _, err := net.SplitHostPort(addr); err == nil {
		return host
	}
	return addr
}

// lineReason is the part of a line that says what happened, without its
// details: the text before the first colon, parenthesis or quote, which
// memberlist puts before errors, sizes and names. Lines about a peer also
// have their numbers blanked ("Compound request had 3 truncated
// messages"), since a peer chooses them; lines about no peer keep them,
// so that node names such as "s1" and "s2" stay apart.
func lineReason(line string, fromPeer bool) string {
	if i := strings.IndexAny(line, ":(\"'"); i >= 0 {
		line = line[:i]
	}
	line = strings.TrimSpace(line)
	if fromPeer {
		var b strings.Builder
		digits := false
		for _, r := range line {
			isDigit := r >= '0' && r <= '9'
			if !isDigit {
				b.WriteRune(r)
			} else if !digits {
				b.WriteByte('#')
			}
			digits = isDigit
		}
		line = b.String()
	}
	return loglimit.Truncate(line, loglimit.MaxReason)
}
