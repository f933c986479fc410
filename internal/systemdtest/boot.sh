#!/bin/sh
# Boots systemd as PID 1 of the namespaces this script starts in, on a
# private root, for graft's tests. Go starts it in new pid, uts, ipc, net
# and mount namespaces (the mount namespace already made recursively
# private). Usage:
#   boot.sh stage1 DIR LAYOUT SYSTEMD PROCS...
#       join the cgroups whose cgroup.procs files are PROCS, enter a new
#       cgroup namespace rooted there, and run stage2
#   boot.sh stage2 DIR LAYOUT SYSTEMD
#       build the root under DIR/ns and exec SYSTEMD in it
# DIR is the test's host directory (DIR/console.log receives systemd's
# console); LAYOUT is the cgroup layout: hybrid, legacy or unified; SYSTEMD
# is the path of the systemd binary.
set -eu
stage=$1 dir=$2 layout=$3 systemd=$4
shift 4

if [ "$stage" = stage1 ]; then
	mount --make-rprivate /
	for procs in "$@"; do echo $$ >"$procs"; done
	exec unshare --cgroup /bin/sh "$0" stage2 "$dir" "$layout" "$systemd"
fi

# Nothing below may reach the host: every mount is made in this private
# mount namespace, and the root systemd sees is an overlay whose writes land
# in a tmpfs that dies with the namespace.
mount --make-rprivate /
mount -t tmpfs -o mode=700 graft-systemdtest "$dir/ns"
mkdir "$dir/ns/upper" "$dir/ns/work" "$dir/ns/root"
mount -t overlay -o "lowerdir=/,upperdir=$dir/ns/upper,workdir=$dir/ns/work" overlay "$dir/ns/root"
r=$dir/ns/root

# /proc of the new pid namespace, its kernel settings read-only: systemd
# would otherwise write global ones (core_pattern, fs.nr_open).
mount -t proc -o nosuid,nodev,noexec proc "$r/proc"
for p in sys sysrq-trigger; do
	if [ -e "$r/proc/$p" ]; then
		mount --bind "$r/proc/$p" "$r/proc/$p"
		mount -o remount,bind,ro "$r/proc/$p"
	fi
done

# /sys read-only, with only systemd's own cgroup hierarchies, rooted at the
# cgroup the test made, writable below it.
mount -t sysfs -o ro,nosuid,nodev,noexec sysfs "$r/sys"
cg=$r/sys/fs/cgroup
case $layout in
unified)
	mount -t cgroup2 -o nosuid,nodev,noexec cgroup2 "$cg"
	;;
hybrid | legacy)
	mount -t tmpfs -o mode=755,nosuid,nodev,noexec cgroup-root "$cg"
	mkdir "$cg/systemd"
	mount -t cgroup -o none,name=systemd,nosuid,nodev,noexec cgroup "$cg/systemd"
	if [ "$layout" = hybrid ]; then
		mkdir "$cg/unified"
		mount -t cgroup2 -o nosuid,nodev,noexec cgroup2 "$cg/unified"
	fi
	# Read-only, so that systemd cannot mount the host's controller
	# hierarchies (cpu, memory, pids...) next to them.
	mount -o remount,ro "$cg"
	;;
*)
	echo "boot.sh: unknown cgroup layout $layout" >&2
	exit 2
	;;
esac

# A minimal /dev, as systemd-nspawn makes one.
mount -t tmpfs -o mode=755,nosuid dev "$r/dev"
for n in null zero full random urandom tty; do
	touch "$r/dev/$n"
	mount --bind "/dev/$n" "$r/dev/$n"
done
touch "$r/dev/console"
mount --bind "$dir/console.log" "$r/dev/console"
mkdir "$r/dev/pts" "$r/dev/shm"
mount -t devpts -o newinstance,ptmxmode=0666,mode=620 devpts "$r/dev/pts"
ln -s pts/ptmx "$r/dev/ptmx"
mount -t tmpfs -o mode=1777,nosuid,nodev shm "$r/dev/shm"
ln -s /proc/self/fd "$r/dev/fd"

mount -t tmpfs -o mode=755,nosuid,nodev run "$r/run"
mount -t tmpfs -o mode=1777,nosuid,nodev tmp "$r/tmp"
mount -t tmpfs -o mode=1777,nosuid,nodev vartmp "$r/var/tmp"

# The units: a target that wants nothing, and masks on everything that
# touches kernel settings or shared directories, in case something pulls
# it in; and no generators.
u=$r/etc/systemd/system
mkdir -p "$u" "$r/etc/systemd/system-generators"
for m in sysinit.target systemd-tmpfiles-setup.service systemd-tmpfiles-setup-dev.service \
	systemd-tmpfiles-clean.service systemd-tmpfiles-clean.timer systemd-sysctl.service \
	systemd-modules-load.service systemd-udevd.service systemd-udevd-control.socket \
	systemd-udevd-kernel.socket systemd-udev-trigger.service systemd-journald.service \
	systemd-journald.socket systemd-journald-dev-log.socket systemd-binfmt.service \
	proc-sys-fs-binfmt_misc.automount systemd-random-seed.service systemd-remount-fs.service; do
	ln -sf /dev/null "$u/$m"
done
for g in "$r"/lib/systemd/system-generators/* "$r"/usr/lib/systemd/system-generators/*; do
	if [ -e "$g" ]; then
		ln -sf /dev/null "$r/etc/systemd/system-generators/${g##*/}"
	fi
done
# The test talks to systemd from outside its pid namespace, where systemd
# cannot see the client's PID and so refuses it on its private socket: a
# proxy inside, on /run/graft-test/bus.sock, connects for it.
cat >"$u/graft-test.target" <<'UNIT'
[Unit]
Description=graft test target: wants nothing but the bus proxies
DefaultDependencies=no
Wants=graft-test-bus.socket graft-test-user-bus.socket
After=graft-test-bus.socket graft-test-user-bus.socket
UNIT
cat >"$u/graft-test-bus.socket" <<'UNIT'
[Unit]
DefaultDependencies=no
[Socket]
ListenStream=/run/graft-test/bus.sock
SocketMode=0600
UNIT
cat >"$u/graft-test-bus.service" <<UNIT
[Unit]
DefaultDependencies=no
[Service]
ExecStart=${systemd%/*}/systemd-socket-proxyd /run/systemd/private
UNIT

# A user manager for root, started with the first connection to its proxy
# on /run/graft-test/user-bus.sock; it too starts only a target that wants
# nothing. (user@0.service would need sysinit.target.)
mkdir -p "$r/etc/systemd/user"
cat >"$r/etc/systemd/user/graft-test.target" <<'UNIT'
[Unit]
Description=graft test target: wants nothing
DefaultDependencies=no
UNIT
cat >"$u/graft-test-user.service" <<UNIT
[Unit]
DefaultDependencies=no
[Service]
Type=notify
Environment=XDG_RUNTIME_DIR=/run/user/0
ExecStartPre=/bin/mkdir -p -m 0700 /run/user/0
ExecStart=$systemd --user --unit=graft-test.target
UNIT
cat >"$u/graft-test-user-bus.socket" <<'UNIT'
[Unit]
DefaultDependencies=no
[Socket]
ListenStream=/run/graft-test/user-bus.sock
SocketMode=0600
UNIT
cat >"$u/graft-test-user-bus.service" <<UNIT
[Unit]
DefaultDependencies=no
Requires=graft-test-user.service
After=graft-test-user.service
[Service]
ExecStart=${systemd%/*}/systemd-socket-proxyd /run/user/0/systemd/private
UNIT

cd "$r"
mkdir -p .oldroot
pivot_root . .oldroot
cd /
umount -l /.oldroot
rmdir /.oldroot
exec env -i container=graft-test PATH=/usr/sbin:/usr/bin:/sbin:/bin \
	"$systemd" --system --unit=graft-test.target --log-target=console --show-status=no
