package resources

import (
	"bytes"
	"encoding/binary"
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func newMsg(t *testing.T, m *Msg) (*Msg, *testRuntime, *logRecorder) {
	t.Helper()
	if err := m.Validate(); err != nil {
		t.Fatal(err)
	}
	rt := newTestRuntime("msg", "m")
	rec := &logRecorder{}
	rt.Logger = slog.New(rec)
	if err := m.Init(&rt.Runtime); err != nil {
		t.Fatal(err)
	}
	return m, rt, rec
}

// The message is logged when the resource first runs and again on each
// refresh, never in between; a run that logs reports a change.
func TestMsgLogsOnceThenOnEachRefresh(t *testing.T) {
	m, rt, rec := newMsg(t, &Msg{Body: "hello from graft", Priority: "Warning", Fields: map[string]string{"b": "2", "a": "1"}})
	converge(t, m, true, false)
	r := onlyAt(t, rec.take(), slog.LevelWarn, "message")
	if r.attrs["body"] != "hello from graft" || r.attrs["priority"] != "Warning" || r.attrs["fields"] != "a=1 b=2" {
		t.Errorf("logged %v", r.attrs)
	}
	converge(t, m, true, true)
	if got := rec.take(); len(got) != 0 {
		t.Errorf("logged again without a refresh: %v", got)
	}
	rt.refresh.Store(true)
	converge(t, m, true, false)
	onlyAt(t, rec.take(), slog.LevelWarn, "message")
	rt.refresh.Store(false)
	converge(t, m, true, true)
}

// In noop mode the message is not logged, only that it would be; applying
// afterwards logs it.
func TestMsgNoopModeOnlySaysItWouldLog(t *testing.T) {
	m, _, rec := newMsg(t, &Msg{Body: "quiet"})
	converge(t, m, false, false)
	recs := rec.take()
	only(t, recs, "would log")
	for _, r := range recs {
		if r.msg == "message" {
			t.Fatal("noop mode logged the message")
		}
	}
	converge(t, m, true, false)
	if r := only(t, rec.take(), "message"); r.attrs["priority"] != "Notice" {
		t.Errorf("priority %q, want mgmt's default Notice", r.attrs["priority"])
	}
}

// mgmt's priority names map to the log's levels.
func TestMsgPriorityChoosesTheLogLevel(t *testing.T) {
	for prio, level := range map[string]slog.Level{
		"Emerg": slog.LevelError, "Err": slog.LevelError, "Warning": slog.LevelWarn,
		"Notice": slog.LevelInfo, "Info": slog.LevelInfo, "Debug": slog.LevelDebug, "": slog.LevelInfo,
	} {
		m, _, rec := newMsg(t, &Msg{Body: "x", Priority: prio})
		converge(t, m, true, false)
		onlyAt(t, rec.take(), level, "message")
	}
}

// listenJournal listens on a unix datagram socket standing in for
// journald's, and returns its path and the listener.
func listenJournal(t *testing.T) (string, *net.UnixConn) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "socket")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: p, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return p, conn
}

// readJournalEntry reads one entry sent to the socket, following a file
// descriptor if the entry came as one, and parses its fields.
func readJournalEntry(t *testing.T, conn *net.UnixConn) (fields map[string]string, viaFile bool) {
	t.Helper()
	buf, oob := make([]byte, 1<<20), make([]byte, 128)
	n, oobn, _, _, err := conn.ReadMsgUnix(buf, oob)
	if err != nil {
		t.Fatal(err)
	}
	data := buf[:n]
	if oobn > 0 {
		msgs, err := syscall.ParseSocketControlMessage(oob[:oobn])
		if err != nil {
			t.Fatal(err)
		}
		fds, err := syscall.ParseUnixRights(&msgs[0])
		if err != nil || len(fds) != 1 {
			t.Fatalf("rights: %v %v", fds, err)
		}
		f := os.NewFile(uintptr(fds[0]), "entry")
		defer f.Close()
		if _, err := f.Seek(0, 0); err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		if _, err := b.ReadFrom(f); err != nil {
			t.Fatal(err)
		}
		data = b.Bytes()
	}
	fields = map[string]string{}
	for len(data) > 0 {
		i := bytes.IndexAny(data, "=\n")
		if i < 0 {
			t.Fatalf("truncated entry: %q", data)
		}
		key := string(data[:i])
		if data[i] == '=' {
			end := bytes.IndexByte(data[i:], '\n') + i
			fields[key] = string(data[i+1 : end])
			data = data[end+1:]
			continue
		}
		start := i + 1 + 8
		if len(data) < start {
			t.Fatalf("truncated length of %s", key)
		}
		end := start + int(binary.LittleEndian.Uint64(data[i+1:]))
		if end >= len(data) || data[end] != '\n' {
			t.Fatalf("the length of %s does not match its value: %q", key, data)
		}
		fields[key] = string(data[start:end])
		data = data[end+1:]
	}
	return fields, oobn > 0
}

// With journal, the entry reaches the journal's socket with the message,
// its syslog priority and the fields, values with newlines included.
func TestMsgJournalReceivesTheEntry(t *testing.T) {
	socket, conn := listenJournal(t)
	m, _, rec := newMsg(t, &Msg{Body: "to the journal", Priority: "Err", Journal: true,
		Fields: map[string]string{"CODE": "42", "MULTI": "line one\nline two"}})
	m.journal = socket
	converge(t, m, true, false)
	got, viaFile := readJournalEntry(t, conn)
	if viaFile {
		t.Error("a small entry came as a file")
	}
	want := map[string]string{"MESSAGE": "to the journal", "PRIORITY": "3", "CODE": "42", "MULTI": "line one\nline two"}
	if len(got) != len(want) {
		t.Errorf("entry %q, want %q", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	onlyAt(t, rec.take(), slog.LevelError, "message")
}

// An entry larger than a datagram is passed as a file, whole.
func TestMsgJournalLargeEntryArrivesWhole(t *testing.T) {
	socket, conn := listenJournal(t)
	body := strings.Repeat("0123456789abcdef", 1<<16) // 1 MiB
	m, _, _ := newMsg(t, &Msg{Body: body, Journal: true})
	m.journal = socket
	converge(t, m, true, false)
	got, viaFile := readJournalEntry(t, conn)
	if !viaFile {
		t.Error("an entry of 1 MiB came as a datagram")
	}
	if got["MESSAGE"] != body || got["PRIORITY"] != "5" {
		t.Errorf("got a message of %d bytes, priority %q; want %d bytes, priority 5", len(got["MESSAGE"]), got["PRIORITY"], len(body))
	}
}

// Without a journal, journal: true fails, saying so, logs nothing, and
// tries again on the next run.
func TestMsgJournalMissingFailsAndRetries(t *testing.T) {
	m, _, rec := newMsg(t, &Msg{Body: "lost?", Journal: true})
	m.journal = filepath.Join(t.TempDir(), "no-such-socket")
	for range 2 {
		_, err := m.CheckApply(t.Context(), true)
		if !errors.Is(err, ErrNoJournal) || !strings.Contains(err.Error(), m.journal) {
			t.Fatalf("got %v, want ErrNoJournal naming the socket", err)
		}
	}
	if got := rec.take(); len(got) != 0 {
		t.Errorf("logged %v although the journal was missing", got)
	}
}

// Bad priorities and field names are refused when the graph loads, naming
// the parameter; syslog is accepted and reported as ignored.
func TestMsgValidateRefusesBadPriorityAndFields(t *testing.T) {
	for _, tc := range []struct {
		m    Msg
		want string
	}{
		{Msg{Priority: "info"}, `priority: "info" is not one of Emerg, Alert, Crit, Err, Warning, Notice, Info, Debug`},
		{Msg{Fields: map[string]string{"_X": "1"}}, `fields: "_X": want letters`},
		{Msg{Fields: map[string]string{"A-B": "1"}}, `fields: "A-B": want letters`},
		{Msg{Journal: true, Fields: map[string]string{"lower": "1"}}, `fields: "lower": the journal takes upper-case`},
		{Msg{Journal: true, Fields: map[string]string{"MESSAGE": "1"}}, `fields: "MESSAGE" is set from body`},
	} {
		if err := tc.m.Validate(); err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("%+v: got %v, want an error starting %q", tc.m, err, tc.want)
		}
	}
	if err := (&Msg{Fields: map[string]string{"lower_ok": "1"}}).Validate(); err != nil {
		t.Errorf("a lower-case field without journal, which mgmt accepts: %v", err)
	}
	if got := (&Msg{Syslog: true}).IgnoredParams(); got["syslog"] == "" {
		t.Error("syslog is not reported as ignored")
	}
}
