package main

import (
	"fmt"
	"os"
	"syscall"
	"testing"
	"unsafe"
)

// terminal is a pseudo-terminal: what a program writes to tty, a person
// would read on a screen; the test reads it from the controlling side.
type terminal struct {
	tty  *os.File
	out  *syncBuffer   // everything written to tty, as the screen gets it ("\n" becomes "\r\n")
	done chan struct{} // closed when the reader stops
}

// openTerminal opens a pseudo-terminal, closed when the test ends.
func openTerminal(t *testing.T) *terminal {
	t.Helper()
	ctl, err := os.OpenFile("/dev/ptmx", os.O_RDWR, 0)
	if err != nil {
		t.Skipf("this machine has no pseudo-terminals: %v", err)
	}
	unlock := int32(0)
	var n uint32
	if err := ioctl(ctl, syscall.TIOCSPTLCK, unsafe.Pointer(&unlock)); err != nil {
		ctl.Close()
		t.Fatalf("unlocking the pseudo-terminal: %v", err)
	}
	if err := ioctl(ctl, syscall.TIOCGPTN, unsafe.Pointer(&n)); err != nil {
		ctl.Close()
		t.Fatalf("naming the pseudo-terminal: %v", err)
	}
	tty, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		ctl.Close()
		t.Fatal(err)
	}
	term := &terminal{tty: tty, out: newSyncBuffer(), done: make(chan struct{})}
	go func() {
		defer close(term.done)
		buf := make([]byte, 4096)
		for {
			n, err := ctl.Read(buf)
			term.out.Write(buf[:n])
			if err != nil {
				return // EIO once the terminal side is closed, or the close below
			}
		}
	}()
	t.Cleanup(func() {
		tty.Close()
		ctl.Close()
		<-term.done
	})
	if !isTerminal(tty) {
		t.Fatalf("%s is not a terminal", tty.Name())
	}
	return term
}

func ioctl(f *os.File, req uintptr, arg unsafe.Pointer) error {
	var errno syscall.Errno
	err := withFd(f, func(fd uintptr) {
		_, _, errno = syscall.Syscall(syscall.SYS_IOCTL, fd, req, uintptr(arg))
	})
	if err != nil {
		return err
	}
	if errno != 0 {
		return errno
	}
	return nil
}

// withFd runs fn with f's descriptor, kept open meanwhile.
func withFd(f *os.File, fn func(fd uintptr)) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	return rc.Control(fn)
}
