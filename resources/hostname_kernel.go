package resources

import (
	"context"
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// kernelNameFile is the kernel's host name as a sysctl file. Linux wakes a
// poll(2) on it with POLLPRI when the name changes (in any UTS namespace),
// so the name is watched without polling it at an interval.
const kernelNameFile = "/proc/sys/kernel/hostname"

// kernelNameWatch waits for changes of the kernel's host name.
type kernelNameWatch struct {
	fd   int // kernelNameFile
	wake int // an eventfd that ends a wait
}

// openKernelNameWatch opens the sysctl file with open(2), not os.Open: the
// kernel reports a change to one poll of the file only, and os.Open would
// register the file with Go's own epoll, which could take the report.
func openKernelNameWatch() (*kernelNameWatch, error) {
	fd, err := unix.Open(kernelNameFile, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("transient name: watch: open %s: %w", kernelNameFile, err)
	}
	wake, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("transient name: watch: eventfd: %w", err)
	}
	return &kernelNameWatch{fd: fd, wake: wake}, nil
}

func (k *kernelNameWatch) close() {
	unix.Close(k.fd)
	unix.Close(k.wake)
}

// run calls notify each time the kernel's host name changes, until ctx is
// done.
func (k *kernelNameWatch) run(ctx context.Context, notify func()) error {
	stop := context.AfterFunc(ctx, func() {
		var one [8]byte
		one[0] = 1 // little and big endian alike read a non-zero counter
		_, _ = unix.Write(k.wake, one[:])
	})
	defer stop()
	fds := []unix.PollFd{
		{Fd: int32(k.fd), Events: unix.POLLPRI},
		{Fd: int32(k.wake), Events: unix.POLLIN},
	}
	for {
		fds[0].Revents, fds[1].Revents = 0, 0
		_, err := unix.Poll(fds, -1)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return fmt.Errorf("transient name: watch: poll %s: %w", kernelNameFile, err)
		}
		if fds[1].Revents != 0 {
			return nil
		}
		if fds[0].Revents&(unix.POLLPRI|unix.POLLERR) != 0 {
			notify()
		}
	}
}
