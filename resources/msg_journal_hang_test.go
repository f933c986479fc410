package resources

import (
	"context"
	"errors"
	"net"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// TestMsgJournalSendGivesUpWhenTheJournalStopsReading sends to a journal
// socket whose queue is full and that never reads (a hung journald): the
// send must end with the context, not block the resource forever.
func TestMsgJournalSendGivesUpWhenTheJournalStopsReading(t *testing.T) {
	socket := filepath.Join(t.TempDir(), "socket")
	l, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: socket, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	// Fill the listener's queue from a non-blocking socket of our own.
	fd, err := syscall.Socket(syscall.AF_UNIX, syscall.SOCK_DGRAM|syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(fd)
	for {
		err := syscall.Sendto(fd, []byte("MESSAGE=filler\n"), 0, &syscall.SockaddrUnix{Name: socket})
		if errors.Is(err, syscall.EAGAIN) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- journalSend(ctx, socket, "hello", 5, nil) }()
	select {
	case err := <-errc:
		if err == nil {
			t.Error("journalSend to a full queue succeeded")
		}
	case <-time.After(20 * time.Second):
		t.Fatal("journalSend still blocked 20s after its context ended")
	}
}
