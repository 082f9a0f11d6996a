#!/bin/bash
# The long-lived "init" of one lab host. Started by lab.py as
#   ip netns exec NS unshare --mount --propagation private host-init.sh HOST_DIR
# so it already sits in the host's network namespace and in a fresh private mount namespace.
# It bind-mounts the host's private directories, mounts cgroup2, starts the host's daemons,
# then waits forever: its pid is the handle lab.py uses (nsenter -t PID -m -n).
set -euo pipefail

host_dir=$1
# shellcheck source=/dev/null
source "$host_dir/root/usr/local/sbin/rwlab-host.env"

fail() {
    echo "$*" >"$host_dir/failed"
    echo "host-init: $*" >&2
    exit 1
}
trap 'fail "host-init failed at line $LINENO"' ERR

for target in $PRIVATE_DIRS; do
    mkdir -p "$target"   # happens on the shared root fs; only the mounted content is private
    mount --bind "$host_dir/root$target" "$target" || fail "bind mount of $target failed"
done
mkdir -p /run/sshd /run/lock /run/sudo
# Non-root users find /usr/bin/systemctl first (their PATH lacks /usr/local/sbin): make that
# one the stand-in too. Only when it exists: never create files in the shared /usr/bin.
if [ -e /usr/bin/systemctl ]; then
    mount --bind /usr/local/sbin/systemctl /usr/bin/systemctl
fi
chmod 0755 /run/sshd
# /root is the machine's own: its ~/.bashrc (pyenv rehash, cargo, ...) would run on every root
# SSH command into the host and can hang on the machine's locks. A lab node starts clean.
if [ -e /root/.bashrc ]; then
    printf '# lab host: the machine'"'"'s own root shell setup is not used here\n' >"$host_dir/root-bashrc"
    mount --bind "$host_dir/root-bashrc" /root/.bashrc
fi

# `ip netns exec` remounted /sys for the netns, so cgroups are gone: dockerd and containerd
# need them. The hierarchy is the machine's; each host lives in its own sub-cgroup.
mount -t cgroup2 cgroup2 /sys/fs/cgroup || fail "mounting cgroup2 failed"
echo $$ >"/sys/fs/cgroup/$CGROUP/daemons/cgroup.procs"

for daemon in $DAEMONS; do
    /usr/local/sbin/rwlab-svc start "$daemon" || fail "$daemon did not start (see $host_dir/logs/$daemon.log)"
done

touch "$host_dir/ready"
trap - ERR
exec sleep infinity
