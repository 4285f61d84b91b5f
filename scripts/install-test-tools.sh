#!/usr/bin/env bash
# The Debian packages the tests need besides Python, installed when missing (apt-get, as root or with sudo):
#   chromium, chromium-driver  the MLflow UI test (tests/test_tracking.py)
#   openssh-server, rsync      the `ray up` test (tests/test_ray_up.py), which runs an sshd of its own (its own
#                              config and keys, on 127.0.0.1 in a private network namespace) and stops it by pid;
#                              on a Debian that runs services (systemd), apt also starts the system's sshd,
#                              which the test never uses
#   postgresql                 tests/test_team.py's PostgreSQL (the MLflow server's store and the shared Optuna
#                              study): the tests run `initdb` into a folder of their own and start `postgres` on
#                              127.0.0.1 themselves, as the `postgres` user when run as root; the cluster apt may
#                              start is never used
# Does nothing when all are there.
set -euo pipefail
missing=()
{ command -v chromium && command -v chromedriver; } >/dev/null || missing+=(chromium chromium-driver)
{ [ -x /usr/sbin/sshd ] && command -v rsync && command -v ssh-keygen; } >/dev/null || missing+=(openssh-server rsync)
{ command -v initdb || compgen -G "/usr/lib/postgresql/*/bin/initdb"; } >/dev/null || missing+=(postgresql)
if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi
if ! command -v apt-get >/dev/null; then
    echo "install ${missing[*]} (Debian's names) with your system's package manager" >&2
    exit 1
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get install -y -q "${missing[@]}" >/dev/null \
    || { $sudo apt-get update -q >/dev/null && $sudo apt-get install -y -q "${missing[@]}" >/dev/null; }
