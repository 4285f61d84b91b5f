#!/usr/bin/env bash
# Debian's openssh-server and rsync for the `ray up` test (tests/test_ray_up.py), which runs an sshd of its own
# (its own config and keys, on 127.0.0.1 in a private network namespace) and stops it by pid. Does nothing when
# both are there. On a Debian that runs services (systemd), apt also starts the system's sshd; the test never
# uses it.
set -euo pipefail
if [ -x /usr/sbin/sshd ] && command -v rsync >/dev/null && command -v ssh-keygen >/dev/null; then
    exit 0
fi
if ! command -v apt-get >/dev/null; then
    echo "install openssh-server (sshd) and rsync with your system's package manager" >&2
    exit 1
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get install -y -q openssh-server rsync >/dev/null \
    || { $sudo apt-get update -q >/dev/null && $sudo apt-get install -y -q openssh-server rsync >/dev/null; }
