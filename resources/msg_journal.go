package resources

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// journalTimeout bounds the wait for a journal whose queue is full.
const journalTimeout = 10 * time.Second

// ErrNoJournal is wrapped by the error of a msg resource with journal: true
// on a host where no systemd journal listens.
var ErrNoJournal = errors.New("no systemd journal listens on this host")

// journalSend sends one entry to the journal listening on socket, in
// journald's native protocol: the fields MESSAGE, PRIORITY and then fields
// in name order. An entry too large for one datagram is passed as a file
// descriptor, as the protocol provides.
func journalSend(ctx context.Context, socket, body string, priority int, fields map[string]string) error {
	var b []byte
	add := func(k, v string) {
		if !strings.Contains(v, "\n") {
			b = append(append(append(b, k...), '='), v...)
			b = append(b, '\n')
			return
		}
		// A value with newlines: the name, a newline, the value's length
		// as 64-bit little endian, the value, a newline.
		b = append(append(b, k...), '\n')
		b = binary.LittleEndian.AppendUint64(b, uint64(len(v)))
		b = append(append(b, v...), '\n')
	}
	add("MESSAGE", body)
	add("PRIORITY", strconv.Itoa(priority))
	for _, k := range slices.Sorted(maps.Keys(fields)) {
		add(k, fields[k])
	}

	if _, err := os.Stat(socket); err != nil {
		return fmt.Errorf("journal: %s: %w (%w)", socket, ErrNoJournal, err)
	}
	// An unconnected socket: Go passes file descriptors only on those.
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Net: "unixgram"})
	if err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	defer conn.Close()
	// A journal that does not read (its queue full) blocks a send: give up
	// after journalTimeout, or sooner when ctx ends.
	if err := conn.SetWriteDeadline(time.Now().Add(journalTimeout)); err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.SetWriteDeadline(time.Now()) })
	defer stop()
	to := &net.UnixAddr{Name: socket, Net: "unixgram"}
	_, _, err = conn.WriteMsgUnix(b, nil, to)
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded):
		return fmt.Errorf("journal: %s takes no message (its queue is full: is journald hung?): %w", socket, err)
	case errors.Is(err, syscall.EMSGSIZE) || errors.Is(err, syscall.ENOBUFS):
		return journalSendFile(conn, to, b)
	case errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ENOENT):
		return fmt.Errorf("journal: %s: %w (%w)", socket, ErrNoJournal, err)
	case err != nil:
		return fmt.Errorf("journal: %w", err)
	}
	return nil
}

// journalSendFile passes the entry as an unlinked file in /dev/shm, the
// protocol's way for entries larger than a datagram.
func journalSendFile(conn *net.UnixConn, to *net.UnixAddr, entry []byte) error {
	f, err := os.CreateTemp("/dev/shm", "graft-journal-*")
	if err != nil {
		return fmt.Errorf("journal: large entry: %w", err)
	}
	defer f.Close()
	if err := os.Remove(f.Name()); err != nil {
		return fmt.Errorf("journal: large entry: %w", err)
	}
	if _, err := f.Write(entry); err != nil {
		return fmt.Errorf("journal: large entry: %w", err)
	}
	if _, _, err := conn.WriteMsgUnix(nil, syscall.UnixRights(int(f.Fd())), to); err != nil {
		return fmt.Errorf("journal: large entry: %w", err)
	}
	return nil
}
