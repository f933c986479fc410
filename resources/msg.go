package resources

import (
	"context"
	"log/slog"
	"maps"
	"slices"
	"strings"

	"github.com/graftcm/graft/engine"
)

// defaultJournalSocket is where systemd-journald takes native messages.
const defaultJournalSocket = "/run/systemd/journal/socket"

// msgPriorityNames are mgmt's priority names, in syslog's order: each
// one's index is its syslog number, which the journal uses.
const msgPriorityNames = "Emerg Alert Crit Err Warning Notice Info Debug"

// msgPriority returns the syslog number of a priority name and the level
// graft's own log gives the message.
func msgPriority(name string) (num int, level slog.Level, ok bool) {
	num = slices.Index(strings.Fields(msgPriorityNames), name)
	switch {
	case num < 0:
		return 0, 0, false
	case num <= 3:
		level = slog.LevelError
	case num == 4:
		level = slog.LevelWarn
	case num == 7:
		level = slog.LevelDebug
	default:
		level = slog.LevelInfo
	}
	return num, level, true
}

// Msg logs a message, as mgmt's msg resource does: once when it starts and
// again on each refresh a notify edge delivers. The message goes to graft's
// log and, with Journal, to the systemd journal. Logging is its change: a
// CheckApply that logs reports a change (so notify edges out of it fire),
// one that has nothing new to log reports being in state.
type Msg struct {
	// Body is the message.
	Body string `yaml:"body"`
	// Priority is one of mgmt's names: Emerg, Alert, Crit, Err, Warning,
	// Notice, Info or Debug. Empty means Notice, mgmt's default.
	Priority string `yaml:"priority"`
	// Fields are extra journal fields, name to value.
	Fields map[string]string `yaml:"fields"`
	// Journal also sends the message to the systemd journal.
	Journal bool `yaml:"journal"`
	// Syslog is accepted, as mgmt accepts it, and ignored, as mgmt
	// ignores it (see IgnoredParams).
	Syslog bool `yaml:"syslog"`

	name    string
	rt      *engine.Runtime
	journal string // the journal's socket; tests use their own
	logged  bool   // the message was logged since Init or the last refresh
}

func (m *Msg) priority() string {
	if m.Priority == "" {
		return "Notice"
	}
	return m.Priority
}

// Validate checks the priority and the field names. mgmt wants field names
// of letters, digits and underscores not starting with an underscore; the
// journal wants them upper-case and sets MESSAGE and PRIORITY itself, so
// with journal both are refused here rather than when the message is sent.
func (m *Msg) Validate() error {
	if _, _, ok := msgPriority(m.priority()); !ok {
		return engine.ParamErrorf("priority", "%q is not one of %s", m.Priority, strings.Join(strings.Fields(msgPriorityNames), ", "))
	}
	for _, k := range slices.Sorted(maps.Keys(m.Fields)) {
		if k == "" || strings.HasPrefix(k, "_") || strings.ContainsFunc(k, func(r rune) bool {
			return !(r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z')
		}) {
			return engine.ParamErrorf("fields", "%q: want letters, digits and underscores, not starting with an underscore", k)
		}
		if !m.Journal {
			continue
		}
		if k != strings.ToUpper(k) {
			return engine.ParamErrorf("fields", "%q: the journal takes upper-case field names only", k)
		}
		if k == "MESSAGE" || k == "PRIORITY" {
			return engine.ParamErrorf("fields", "%q is set from body and priority", k)
		}
	}
	return nil
}

// IgnoredParams says that syslog does nothing: mgmt accepts it and sends
// nothing to syslog, and so does graft.
func (m *Msg) IgnoredParams() map[string]string {
	if !m.Syslog {
		return nil
	}
	return map[string]string{"syslog": "mgmt sends nothing to syslog and neither does graft; the message goes to graft's log, and to the journal with journal: true"}
}

// Init keeps the runtime.
func (m *Msg) Init(rt *engine.Runtime) error { m.rt = rt; return nil }

// Cleanup does nothing.
func (m *Msg) Cleanup() error { return nil }

// Watch has nothing to watch.
func (m *Msg) Watch(context.Context) error {
	m.rt.Running()
	return nil
}

// CheckApply logs the message if it has not been logged since the resource
// started or since the last refresh. With apply false it logs that it would.
func (m *Msg) CheckApply(ctx context.Context, apply bool) (bool, error) {
	if m.rt.Refresh() {
		m.logged = false
	}
	if m.logged {
		return true, nil
	}
	if !apply {
		m.rt.Logger.Info("would log", "body", m.Body)
		return false, nil
	}
	num, level, _ := msgPriority(m.priority())
	if m.Journal {
		socket := m.journal
		if socket == "" {
			socket = defaultJournalSocket
		}
		if err := journalSend(ctx, socket, m.Body, num, m.Fields); err != nil {
			return false, err
		}
	}
	attrs := []any{"body", m.Body, "priority", m.priority()}
	if len(m.Fields) > 0 {
		var fs []string
		for _, k := range slices.Sorted(maps.Keys(m.Fields)) {
			fs = append(fs, k+"="+m.Fields[k])
		}
		attrs = append(attrs, "fields", strings.Join(fs, " "))
	}
	m.rt.Logger.Log(ctx, level, "message", attrs...)
	m.logged = true
	return false, nil
}
