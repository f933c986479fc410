package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/urfave/cli/v2"
	"golang.org/x/sys/unix"

	"github.com/graftcm/graft/api"
)

// defaultWatchInterval and minWatchInterval are `graft status --watch`'s
// default refresh interval and the shortest it takes.
const (
	defaultWatchInterval = 2 * time.Second
	minWatchInterval     = 100 * time.Millisecond
)

// The terminal controls a redraw uses (ECMA-48): cursor to the top left,
// erase the screen, erase to the end of the line, erase to the end of
// the screen.
const (
	ansiHome      = "\x1b[H"
	ansiClear     = "\x1b[2J"
	ansiClearLine = "\x1b[K"
	ansiClearDown = "\x1b[J"
)

// watchStatus shows the status every interval until c's context ends
// (Ctrl-C), which is a success. A status the agent does not give (it is
// restarting, say) shows as its error, and the watch goes on.
func watchStatus(c *cli.Context, e *env, interval time.Duration) error {
	client, target, err := dialAgent(c)
	if err != nil {
		return err
	}
	defer client.Close()
	ctx := c.Context
	screen := watchScreen{w: e.stdout, tty: isTerminal(e.stdout), json: c.Bool("json"), interval: interval}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		rctx, cancel := context.WithTimeout(ctx, min(clientTimeout, max(interval, 5*time.Second)))
		rep, err := gatherStatus(rctx, client)
		cancel()
		if ctx.Err() != nil {
			return nil // stopped while asking: show nothing half-read
		}
		if err := screen.show(rep, target.explain(err), time.Now()); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// watchScreen is where `graft status --watch` shows each status.
type watchScreen struct {
	w        io.Writer
	tty      bool // redraw in place
	json     bool // one JSON object a line
	interval time.Duration
	drawn    bool // a frame is on the screen
}

// show writes one status, or the error that stood in for it, in one
// write: a redraw never shows a half-erased screen.
func (s *watchScreen) show(rep statusReport, statusErr error, now time.Time) error {
	var b bytes.Buffer
	switch {
	case s.json:
		out := any(rep)
		if statusErr != nil {
			out = api.ErrorBody{Error: statusErr.Error()}
		}
		line, err := json.Marshal(out)
		if err != nil {
			return err
		}
		b.Write(line)
		b.WriteByte('\n')
		_, err = s.w.Write(b.Bytes())
		return err
	case s.tty:
		fmt.Fprintf(&b, "every %v: graft status (Ctrl-C to stop)  %s\n\n", s.interval, now.Format(time.DateTime))
	default:
		fmt.Fprintf(&b, "--- graft status at %s ---\n", now.UTC().Format(time.RFC3339))
	}
	if statusErr != nil {
		fmt.Fprintf(&b, "status: not known: %v\n", statusErr)
	} else if err := printReport(&b, rep, now); err != nil {
		return err
	}
	if !s.tty {
		_, err := s.w.Write(b.Bytes())
		return err
	}
	_, err := s.w.Write(s.frame(b.Bytes(), terminalRows(s.w)))
	s.drawn = true
	return err
}

// frame is the terminal output that replaces the screen with text: the
// cursor goes home, each line overwrites the one there and erases the
// rest of it, and the screen below the last line is erased. Nothing is
// erased before it is overwritten, so the screen does not flicker. The
// first frame erases the screen first. rows, if positive, is the
// terminal's height: a text as long or longer is cut to fit, its last line saying
// how many lines are not shown (a text taller than the screen would
// scroll, and the next frame's home would not be its top).
func (s *watchScreen) frame(text []byte, rows int) []byte {
	lines := bytes.Split(bytes.TrimSuffix(text, []byte("\n")), []byte("\n"))
	if rows > 2 && len(lines) >= rows {
		hidden := len(lines) - (rows - 2)
		lines = append(lines[:rows-2:rows-2], fmt.Appendf(nil, "... %d more lines: enlarge the terminal, or see graft status", hidden))
	}
	var b bytes.Buffer
	b.WriteString(ansiHome)
	if !s.drawn {
		b.WriteString(ansiClear)
	}
	for _, l := range lines {
		b.Write(l)
		b.WriteString(ansiClearLine + "\n")
	}
	b.WriteString(ansiClearDown)
	return b.Bytes()
}

// terminalRows returns the height of the terminal w is, 0 if unknown.
func terminalRows(w io.Writer) int {
	f, ok := w.(*os.File)
	if !ok {
		return 0
	}
	rc, err := f.SyscallConn()
	if err != nil {
		return 0
	}
	var rows int
	_ = rc.Control(func(fd uintptr) {
		if ws, err := unix.IoctlGetWinsize(int(fd), unix.TIOCGWINSZ); err == nil {
			rows = int(ws.Row)
		}
	})
	return rows
}
