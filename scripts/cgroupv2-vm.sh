#!/usr/bin/env bash
# A pure cgroup v2 Linux in a VM, for tests that need what these machines
# lack (hybrid cgroups, no systemd): see ../shared/reference/cgroupv2-vm.md
# and docs/ARCHITECTURE.md "cgroup v2 test VM".
#
#   scripts/cgroupv2-vm.sh prepare
#       Makes (once) /var/tmp/wren-vm/<key>/ with Debian's 6.1 kernel and
#       its modules and a busybox initramfs; <key> hashes the inputs (kernel
#       package, busybox, the code that builds them), so a change makes a new one. Prints
#       the directory.
#   scripts/cgroupv2-vm.sh run [--systemd | --hybrid] [--rw DIR]... [--env NAME]... -- CMD...
#       Boots the guest under QEMU (TCG), runs CMD as root in the current
#       directory, prints its output and exits with its status (124 on
#       timeout, 125 when the guest ended without a status).
#       --hybrid is --systemd with systemd's hybrid cgroup layout instead
#       of pure v2 (v1 controllers, a controller-less cgroup2 at
#       /sys/fs/cgroup/unified: the build machines' layout, with systemd).
#
# The guest's / is the host's /, shared read-only over virtio-9p under a
# tmpfs overlay: guest writes never reach the host except in the --rw
# directories (shared read-write at the same path). /tmp is a fresh tmpfs.
# Without --systemd a shell script is PID 1 and mounts cgroup2 at
# /sys/fs/cgroup itself; with --systemd, the host's systemd boots
# basic.target and runs CMD as a service. WREN_VM_TIMEOUT (seconds,
# default 900) bounds the whole run; WREN_VM_MEM (MiB, default 2048) and
# WREN_VM_CPUS (default 2) size the guest.
set -euo pipefail
base=${WREN_VM_DIR:-/var/tmp/wren-vm}

need_tools() {
  local missing=()
  command -v qemu-system-x86_64 >/dev/null || missing+=(qemu-system-x86)
  command -v cpio >/dev/null || missing+=(cpio)
  if [ ${#missing[@]} -gt 0 ]; then
    echo "cgroupv2-vm: missing ${missing[*]} (make deps)" >&2
    exit 3
  fi
}

# The kernel package: Debian's current 6.1 amd64 image, named by the
# linux-image-amd64 metapackage, unless WREN_VM_KERNEL_PKG names one.
kernel_pkg() {
  if [ -n "${WREN_VM_KERNEL_PKG:-}" ]; then
    echo "$WREN_VM_KERNEL_PKG"
    return
  fi
  apt-cache depends linux-image-amd64 2>/dev/null |
    sed -n 's/^ *Depends: \(linux-image-[0-9].*-amd64\)$/\1/p' | head -n1
}

busybox_bin() {
  local b
  for b in /bin/busybox /usr/bin/busybox; do
    [ -x "$b" ] && { echo "$b"; return; }
  done
  echo "cgroupv2-vm: busybox-static is not installed (make deps)" >&2
  exit 3
}

# The initramfs's /init: load the 9p/virtio/overlay modules, mount the
# host's / read-only under a tmpfs overlay, add the shares, switch_root.
write_init() {
  cat >"$1" <<'EOF'
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
for m in virtio_pci 9pnet_virtio 9p overlay; do
  modprobe "$m" || { echo "wren-vm: modprobe $m failed"; poweroff -f; }
done
opts=trans=virtio,version=9p2000.L,msize=512000
mkdir -p /lower /rw /newroot
mount -t 9p -o "$opts,ro" hostroot /lower || { echo "wren-vm: 9p hostroot"; poweroff -f; }
mount -t tmpfs -o mode=0755 rw /rw
mkdir -p /rw/upper /rw/work
mount -t overlay -o lowerdir=/lower,upperdir=/rw/upper,workdir=/rw/work overlay /newroot
mkdir -p /newroot/wren-vm
mount -t 9p -o "$opts" wrenvm /newroot/wren-vm
. /newroot/wren-vm/boot.env
# A fresh /tmp; a project checked out under /tmp keeps its place in it.
if [ -n "${WREN_VM_KEEP:-}" ]; then
  mkdir -p /keep
  mount --bind "/newroot$WREN_VM_KEEP" /keep
fi
mount -t tmpfs -o mode=1777 tmp /newroot/tmp
if [ -n "${WREN_VM_KEEP:-}" ]; then
  mkdir -p "/newroot$WREN_VM_KEEP"
  mount --move /keep "/newroot$WREN_VM_KEEP"
fi
# The kernel's own modules, for anything the guest loads later (the host
# may have no /lib/modules of its own).
mkdir -p /newroot/lib/modules
mount --bind "/newroot$WREN_VM_KDIR/lib/modules" /newroot/lib/modules
i=0
for d in $WREN_VM_RW; do
  mount -t 9p -o "$opts" "rw$i" "/newroot$d"
  i=$((i + 1))
done
if [ -n "${WREN_VM_SYSTEMD_UNITS:-}" ]; then
  cp "/newroot$WREN_VM_SYSTEMD_UNITS"/* /newroot/etc/systemd/system/
  for u in docker.service docker.socket containerd.service podman.service \
      podman.socket apparmor.service systemd-timesyncd.service \
      serial-getty@ttyS0.service getty@tty1.service; do
    ln -sf /dev/null "/newroot/etc/systemd/system/$u"
  done
fi
# systemd takes a /.dockerenv for a container and then ignores the kernel
# command line (unified hierarchy).
rm -f /newroot/.dockerenv
umount /proc /sys
mount --move /dev /newroot/dev
exec switch_root /newroot "$WREN_VM_INIT"
EOF
  chmod 0755 "$1"
}

prepare() {
  local pkg bb key dir tmp kver
  pkg=$(kernel_pkg)
  [ -n "$pkg" ] || { echo "cgroupv2-vm: no linux-image-amd64 in apt (apt-get update?)" >&2; exit 3; }
  bb=$(busybox_bin)
  key=$( { echo "$pkg"; sha256sum "$bb" | cut -d' ' -f1; declare -f write_init prepare; } | sha256sum | cut -c1-16)
  dir=$base/$key
  if [ -e "$dir/.complete" ]; then
    echo "$dir"
    return
  fi
  mkdir -p "$base"
  tmp=$(mktemp -d "$base/.prep.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  (cd "$tmp" && apt-get download -q "$pkg" >&2 2>/dev/null) ||
    (cd "$tmp" && apt-get update -qq && apt-get download -q "$pkg" >&2)
  mkdir "$tmp/kernel"
  dpkg -x "$tmp"/linux-image-*.deb "$tmp/kernel"
  rm -f "$tmp"/linux-image-*.deb
  kver=$(ls "$tmp/kernel/lib/modules")
  busybox depmod -b "$tmp/kernel" "$kver"
  # The initramfs: static busybox, /init, and the few modules /init loads
  # (with their dependencies from modules.dep).
  local ird=$tmp/initramfs mdir=lib/modules/$kver
  mkdir -p "$ird"/{bin,dev,proc,sys,"$mdir"}
  cp "$bb" "$ird/bin/busybox"
  write_init "$ird/init"
  cp "$tmp/kernel/$mdir/modules.dep" "$ird/$mdir/"
  local f
  for f in $(grep -E '/(virtio_pci|9pnet_virtio|9p|overlay)\.ko:' "$tmp/kernel/$mdir/modules.dep" | tr -d ':'); do
    mkdir -p "$ird/$mdir/$(dirname "$f")"
    cp "$tmp/kernel/$mdir/$f" "$ird/$mdir/$f"
  done
  (cd "$ird" && find . | cpio -o -H newc --quiet | gzip -1) >"$tmp/initramfs.gz"
  rm -rf "$ird"
  echo "$kver" >"$tmp/kver"
  touch "$tmp/.complete"
  rm -rf "$dir"
  mv "$tmp" "$dir"
  # Older preparations (other inputs) are not used again.
  find "$base" -mindepth 1 -maxdepth 1 -type d -not -name runs -not -name "$key" -exec rm -rf {} +
  trap - EXIT
  echo "$dir"
}

# PID 1 in the guest without systemd: the usual API filesystems, cgroup2 on
# /sys/fs/cgroup, then the command.
write_stage2() {
  cat >"$1" <<'EOF'
#!/bin/sh
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t cgroup2 cgroup2 /sys/fs/cgroup
mkdir -p /dev/pts /dev/shm /dev/mqueue
mount -t devpts -o newinstance,ptmxmode=0666 devpts /dev/pts
mount -t tmpfs shm /dev/shm
mount -t mqueue mqueue /dev/mqueue
mount -t tmpfs -o mode=0755 run /run
mount -t bpf bpf /sys/fs/bpf 2>/dev/null
hostname wren-vm
/wren-vm/cmd.sh
sync
poweroff -f
EOF
  chmod 0755 "$1"
}

# The guest's record of a command that runs too long: the process tree,
# then each user process's threads with their kernel stacks.
write_watchdog() {
  cat >"$1" <<'EOF'
#!/bin/sh
echo "wren-vm watchdog: the command has not ended; processes:"
ps -eo pid,ppid,stat,etimes,wchan:28,args --forest 2>/dev/null || ps
for p in /proc/[0-9]*; do
  # (proc and cgroup files have no size: read them)
  c=$(tr '\0' ' ' <"$p/cmdline" 2>/dev/null | cut -c1-160)
  [ -n "$c" ] || continue
  echo "--- pid ${p#/proc/}: $c"
  for t in "$p"/task/*; do
    echo "  task ${t##*/} ($(cut -d' ' -f3 "$t/stat" 2>/dev/null)):"
    sed 's/^/    /' "$t/stack" 2>/dev/null
  done
done
echo "cgroups with processes:"
find /sys/fs/cgroup -mindepth 2 -name cgroup.procs 2>/dev/null | while read -r f; do
  c=$(tr '\n' ' ' <"$f" 2>/dev/null)
  [ -n "$c" ] && echo "  ${f%/cgroup.procs}: $c"
done
EOF
  chmod 0755 "$1"
}

run() {
  local systemd=0 hybrid=0 rw=() envs=()
  while [ $# -gt 0 ]; do
    case $1 in
      --systemd) systemd=1; shift ;;
      --hybrid) systemd=1; hybrid=1; shift ;;
      --rw) rw+=("$(readlink -f "$2")"); shift 2 ;;
      --env) envs+=("$2"); shift 2 ;;
      --) shift; break ;;
      *) echo "cgroupv2-vm: unknown option $1" >&2; exit 2 ;;
    esac
  done
  [ $# -gt 0 ] || { echo "usage: cgroupv2-vm.sh run [--systemd | --hybrid] [--rw DIR]... [--env NAME]... -- CMD..." >&2; exit 2; }
  need_tools
  local dir kver share qemu_pid st
  dir=$(prepare)
  kver=$(cat "$dir/kver")
  mkdir -p "$base/runs"
  share=$(mktemp -d "$base/runs/run.XXXXXX")
  trap 'rm -rf "$share"' EXIT
  {
    echo "WREN_VM_KDIR=$dir/kernel"
    echo "WREN_VM_RW='${rw[*]}'"
    # The guest's /tmp is a fresh tmpfs: keep the top directory of a
    # working directory under /tmp (a checkout there, as CI may make).
    case $PWD in
      /tmp/?*) keep=${PWD#/tmp/}; echo "WREN_VM_KEEP=/tmp/${keep%%/*}" ;;
    esac
    if [ $systemd = 1 ]; then echo "WREN_VM_INIT=/lib/systemd/systemd"; else echo "WREN_VM_INIT=/wren-vm/stage2.sh"; fi
  } >"$share/boot.env"
  write_stage2 "$share/stage2.sh"
  # The command, with its directory and the chosen environment.
  {
    echo '#!/bin/sh'
    echo 'export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root'
    local e
    for e in "${envs[@]}"; do
      [ -n "${!e+x}" ] && printf 'export %s=%q\n' "$e" "${!e}"
    done
    # A watchdog: shortly before the host's timeout kills the guest, it
    # has the kernel print the blocked tasks and every CPU's backtrace on
    # the console (shell builtins and /proc only: no 9p read, in case the
    # share is what hangs), then records every process with its kernel
    # stack. The host prints both after a timeout.
    local limit=${WREN_VM_TIMEOUT:-900}
    if [ "$limit" -gt 150 ]; then
      printf '( sleep %d; echo "<3>wren-vm watchdog" >/dev/kmsg; echo w >/proc/sysrq-trigger; echo l >/proc/sysrq-trigger; /wren-vm/watchdog.sh >/wren-vm/watchdog 2>&1 ) &\n' $((limit - 100))
    fi
    printf 'cd %q || exit 126\n' "$PWD"
    printf '%q ' "$@"
    echo '>/wren-vm/out 2>&1 </dev/null'
    echo 'echo $? >/wren-vm/status.tmp && mv /wren-vm/status.tmp /wren-vm/status'
  } >"$share/cmd.sh"
  chmod 0755 "$share/cmd.sh"
  write_watchdog "$share/watchdog.sh"
  : >"$share/out"
  local cmdline="console=ttyS0 panic=-1 cgroup_no_v1=all systemd.unified_cgroup_hierarchy=1 loglevel=4"
  if [ $hybrid = 1 ]; then
    # systemd 252 mounts the v1 controllers, its name=systemd hierarchy
    # and cgroup2 at /sys/fs/cgroup/unified (hybrid is its default when
    # the unified hierarchy is off; no legacy-force switch before 256).
    cmdline="console=ttyS0 panic=-1 systemd.unified_cgroup_hierarchy=0 loglevel=4"
  fi
  if [ $systemd = 1 ]; then
    # systemd runs the command as a oneshot service after basic.target,
    # then powers off; units the host image enables are masked.
    cmdline+=" systemd.unit=wren-vm.target systemd.show_status=0 systemd.firstboot=0"
    local sd=$share/systemd
    mkdir -p "$sd"
    cat >"$sd/wren-vm.target" <<'EOF'
[Unit]
Description=wren VM command
Requires=basic.target
Wants=wren-vm.service
After=basic.target
AllowIsolate=yes
EOF
    cat >"$sd/wren-vm.service" <<'EOF'
[Unit]
Description=wren VM command
After=basic.target
[Service]
# simple, not oneshot: the boot completes ("running") while the command
# runs, so it may wait for that (systemctl is-system-running --wait).
Type=simple
ExecStart=/wren-vm/cmd.sh
ExecStopPost=/bin/systemctl --no-block poweroff --force
Delegate=no
EOF
    echo "WREN_VM_SYSTEMD_UNITS=/wren-vm/systemd" >>"$share/boot.env"
  fi
  # Read-write shares at their host paths (tags rw0, rw1...).
  local virtfs=(-virtfs "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap"
    -virtfs "local,path=$share,mount_tag=wrenvm,security_model=none,multidevs=remap")
  local i=0 d
  for d in "${rw[@]}"; do
    mkdir -p "$d"
    virtfs+=(-virtfs "local,path=$d,mount_tag=rw$i,security_model=none,multidevs=remap")
    i=$((i + 1))
  done
  tail -n +1 -F "$share/out" 2>/dev/null &
  local tail_pid=$!
  local attempt
  for attempt in 1 2; do
    set +e
    timeout --kill-after=10 "${WREN_VM_TIMEOUT:-900}" \
      qemu-system-x86_64 -accel tcg,thread=multi -cpu max -machine q35 \
      -m "${WREN_VM_MEM:-2048}" -smp "${WREN_VM_CPUS:-2}" \
      -nographic -no-reboot -nodefaults -serial "file:$share/console" \
      -kernel "$dir/kernel/boot/vmlinuz-$kver" -initrd "$dir/initramfs.gz" \
      -append "$cmdline" "${virtfs[@]}"
    st=$?
    set -e
    # A guest that timed out without writing a line of its command's
    # output never got that far: seen once in CI (the systemd guest, 480 s
    # with nothing on the console after the boot loader's lines, which
    # loglevel=4 leaves as the last ones). Boot it once more; a guest
    # that hung in its tests is not retried.
    if [ $attempt = 1 ] && { [ $st = 124 ] || [ $st = 137 ]; } && [ ! -s "$share/out" ]; then
      echo "cgroupv2-vm: the guest did not get to its command in ${WREN_VM_TIMEOUT:-900}s; booting it again; console:" >&2
      tail -n 5 "$share/console" >&2
      continue
    fi
    # A guest whose watchdog never ran stopped as a whole (its kernel or
    # QEMU), not in one test: seen once in CI (the v2 guest, 480 s, its
    # test harness silent after 5 of 8 tests, not even libtest's 60 s
    # notices). Boot it once more too. A watchdog that ran means the
    # guest lived and a test hung: not retried, its record is printed.
    if [ $attempt = 1 ] && { [ $st = 124 ] || [ $st = 137 ]; } &&
      [ "${WREN_VM_TIMEOUT:-900}" -gt 150 ] && ! grep -q "wren-vm watchdog" "$share/console"; then
      echo "cgroupv2-vm: the guest stopped: its watchdog did not run in ${WREN_VM_TIMEOUT:-900}s; booting it again; console:" >&2
      tail -n 20 "$share/console" >&2
      : >"$share/out"
      continue
    fi
    break
  done
  sleep 0.3
  kill "$tail_pid" 2>/dev/null || true
  wait "$tail_pid" 2>/dev/null || true
  if [ $st = 124 ] || [ $st = 137 ]; then
    echo "cgroupv2-vm: timed out after ${WREN_VM_TIMEOUT:-900}s; console:" >&2
    if grep -q "wren-vm watchdog" "$share/console"; then
      sed -n '/wren-vm watchdog/,$p' "$share/console" >&2
    else
      tail -n 40 "$share/console" >&2
    fi
    if [ -s "$share/watchdog" ]; then
      echo "cgroupv2-vm: the guest's watchdog record:" >&2
      cat "$share/watchdog" >&2
    fi
    exit 124
  fi
  if [ ! -s "$share/status" ]; then
    echo "cgroupv2-vm: the guest ended without a status (qemu exit $st); console:" >&2
    tail -n 40 "$share/console" >&2
    exit 125
  fi
  exit "$(cat "$share/status")"
}

case ${1:-} in
  prepare) prepare ;;
  run) shift; run "$@" ;;
  *) echo "usage: cgroupv2-vm.sh prepare | run [--systemd | --hybrid] [--rw DIR]... [--env NAME]... -- CMD..." >&2; exit 2 ;;
esac
