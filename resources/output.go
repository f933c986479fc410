package resources

import (
	"bytes"
	"io"
	"sync"
)

// lockedWriter serialises writes to w.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// maxOutput is how much of each output stream a command run keeps: the
// last 64 KiB.
const maxOutput = 64 << 10

// tailBuffer is an io.Writer that keeps the last limit bytes written to it.
// It is not safe for concurrent use.
type tailBuffer struct {
	limit   int
	buf     []byte
	dropped int64 // bytes dropped from the front
}

func newTailBuffer(limit int) *tailBuffer { return &tailBuffer{limit: limit} }

// Write never fails.
func (t *tailBuffer) Write(p []byte) (int, error) {
	n := len(p)
	if len(p) >= t.limit {
		t.dropped += int64(len(t.buf) + len(p) - t.limit)
		t.buf = append(t.buf[:0], p[len(p)-t.limit:]...)
		return n, nil
	}
	if over := len(t.buf) + len(p) - t.limit; over > 0 {
		t.buf = t.buf[:copy(t.buf, t.buf[over:])]
		t.dropped += int64(over)
	}
	t.buf = append(t.buf, p...)
	return n, nil
}

// Bytes returns what is kept. The slice is valid until the next Write.
func (t *tailBuffer) Bytes() []byte { return t.buf }

// Dropped returns how many bytes were written but are no longer kept.
func (t *tailBuffer) Dropped() int64 { return t.dropped }

// maxLine caps the length of one line of a watch command's output.
const maxLine = 64 << 10

// lineWriter is an io.Writer that hands fn each line written to it, without
// its newline. A line longer than limit is handed over once, cut to its first
// limit bytes, with cut set; the rest of it is dropped. The slice passed to fn
// is only valid during the call. It is not safe for concurrent use.
type lineWriter struct {
	limit int
	fn    func(line []byte, cut bool)
	buf   []byte
	skip  bool // dropping the rest of an overlong line
}

func newLineWriter(limit int, fn func(line []byte, cut bool)) *lineWriter {
	return &lineWriter{limit: limit, fn: fn}
}

// Write never fails.
func (w *lineWriter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		part := p
		if i >= 0 {
			part = p[:i]
		}
		if !w.skip {
			if room := w.limit - len(w.buf); len(part) > room {
				w.buf = append(w.buf, part[:room]...)
				w.fn(w.buf, true)
				w.buf, w.skip = w.buf[:0], true
			} else {
				w.buf = append(w.buf, part...)
			}
		}
		if i < 0 {
			break
		}
		if !w.skip {
			w.fn(w.buf, false)
		}
		w.buf, w.skip = w.buf[:0], false
		p = p[i+1:]
	}
	return n, nil
}

// Flush hands over a last line that had no newline.
func (w *lineWriter) Flush() {
	if !w.skip && len(w.buf) > 0 {
		w.fn(w.buf, false)
	}
	w.buf, w.skip = w.buf[:0], false
}
