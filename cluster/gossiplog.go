package cluster

import (
	"context"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// memberlist logs one line for every packet or stream it cannot use, and
// anyone can send those: 20,000 spoofed UDP packets of garbage made 20,000
// ERROR lines in under three seconds. Its lines are therefore rate-limited
// by reason and source before they reach the log: a reason (the line's
// text up to its details) is logged at most once per source IP per
// gossipLogWindow, and for at most gossipLogSources sources per window in
// all, since UDP sources are spoofed for free. The next line of a reason
// that gets through says how many were suppressed before it.
const (
	gossipLogWindow  = 10 * time.Second
	gossipLogSources = 5
	// gossipLogReasons bounds the reasons tracked at once; lines of
	// further reasons share one window.
	gossipLogReasons = 256
	// gossipLogMaxReason and gossipLogMaxLine bound the key kept per
	// reason and the text logged per line (memberlist quotes what peers
	// sent, such as node names and metadata).
	gossipLogMaxReason = 96
	gossipLogMaxLine   = 1024
)

// Attribute keys of gossip log lines.
const (
	logKeyRemote     = "remote"
	logKeySuppressed = "suppressed"
)

// logLimiter decides which lines of a flood are logged: a reason at most
// once per source per window, and for at most maxSources sources per
// window. It is safe for concurrent use.
type logLimiter struct {
	now        func() time.Time
	span       time.Duration
	maxSources int

	mu      sync.Mutex
	reasons map[string]*logWindow
	other   logWindow // reasons beyond gossipLogReasons
}

// logWindow is one reason's current window.
type logWindow struct {
	start time.Time
	// sources logged in this window; at most the limiter's maxSources.
	sources map[string]struct{}
	// suppressed counts lines not logged since the last one that was.
	suppressed int
}

// newLogLimiter returns the gossip port's limiter: gossipLogWindow, and
// gossipLogSources sources per window.
func newLogLimiter(now func() time.Time) *logLimiter {
	return &logLimiter{now: now, span: gossipLogWindow, maxSources: gossipLogSources, reasons: map[string]*logWindow{}}
}

// allow reports whether a line of reason from source (an IP, or "" for
// lines about no peer) may be logged and, if so, how many lines of that
// reason were suppressed since the last one logged.
func (l *logLimiter) allow(reason, source string) (ok bool, suppressed int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	w := l.window(reason, now)
	if w.sources == nil || now.Sub(w.start) >= l.span {
		w.start = now
		w.sources = make(map[string]struct{}, 1)
	}
	if _, seen := w.sources[source]; seen || len(w.sources) >= l.maxSources {
		w.suppressed++
		return false, 0
	}
	w.sources[source] = struct{}{}
	suppressed, w.suppressed = w.suppressed, 0
	return true, suppressed
}

// window returns reason's window, making room for it by forgetting
// expired ones when the table is full. Forgetting a window loses its count
// of suppressed lines, which no line has reported within a window: a
// flood that stopped.
func (l *logLimiter) window(reason string, now time.Time) *logWindow {
	if w, ok := l.reasons[reason]; ok {
		return w
	}
	if len(l.reasons) >= gossipLogReasons {
		for r, w := range l.reasons {
			if now.Sub(w.start) >= l.span {
				delete(l.reasons, r)
			}
		}
	}
	if len(l.reasons) >= gossipLogReasons {
		return &l.other
	}
	w := &logWindow{}
	l.reasons[reason] = w
	return w
}

// slogWriter turns memberlist's log lines ("[WARN] memberlist: ... from=IP:port")
// into slog records at the matching level, with the peer's address as an
// attribute, rate-limited by notes.
type slogWriter struct {
	log   *slog.Logger
	notes *logLimiter
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
		args = append(args, logKeyRemote, from)
	}
	if w.notes != nil {
		ok, suppressed := w.notes.allow(lineReason(line, from != ""), sourceIP(from))
		if !ok {
			return len(p), nil
		}
		if suppressed > 0 {
			args = append(args, logKeySuppressed, suppressed)
		}
	}
	w.log.Log(ctx, lvl, truncateText(line, gossipLogMaxLine), args...)
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
	return truncateText(line, gossipLogMaxReason)
}

// truncateText cuts s to at most n bytes, on a character boundary.
func truncateText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
