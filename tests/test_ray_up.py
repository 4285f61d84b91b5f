"""`ray up` for real: cluster-local.yaml with cluster.yaml's own setup and start commands, brought up on this
machine, searched on, and taken down.

Everything runs in private namespaces (network: loopback only; pid: `ray stop` sees only what this test started;
mount: the node's home and Ray's /tmp/ray are folders of the test's tmp dir). A throwaway sshd listens on
127.0.0.1 with keys made here; `ray up` logs in to it as this user, rsyncs the project, runs the setup commands
(a fresh venv installed from a wheelhouse made beforehand, since the namespace is offline) and the head's start
commands (token auth). The search driver runs on the head through `ray exec`, once with the cluster's token and
once without it. `ray down` ends it, and every process the test started is checked gone by pid.
Needs root (namespaces, port 22), unshare/nsenter, sshd and rsync (scripts/install-test-tools.sh).
"""

import dataclasses
import hashlib
import json
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from mlflow import MlflowClient
from test_cluster_config import local_variant

from tracking.tracker import OUTCOMES

ROOT = Path(__file__).resolve().parents[1]
RAY = Path(sys.executable).with_name("ray")
SSHD = Path("/usr/sbin/sshd")

# PID 1 of the namespace: it reaps the daemons that `ray start` and sshd leave to it, so that a stopped process is
# gone, not a zombie.
REAPER = """
import os, time
while True:
    try:
        os.wait()
    except ChildProcessError:
        time.sleep(0.2)
"""


def _missing() -> str | None:
    if os.geteuid() != 0:
        return "needs root (private network, pid and mount namespaces; an sshd on port 22)"
    for tool in ("unshare", "nsenter", "ip", "rsync", "ssh", "ssh-keygen"):
        if shutil.which(tool) is None:
            return f"needs {tool}"
    if not SSHD.exists():
        return f"needs {SSHD}"
    return None


@pytest.fixture(autouse=True)
def _tools():
    """Skipped where it cannot run, saying how to make it run; IZF_REQUIRE_RAY_UP=1 (.ci/run) makes that a failure."""
    if why := _missing():
        why = f"{why}: run `bash scripts/install-test-tools.sh` as root (the README's test command does)"
        if os.environ.get("IZF_REQUIRE_RAY_UP") == "1":
            pytest.fail(f"IZF_REQUIRE_RAY_UP=1: {why}")
        pytest.skip(why)


class Namespace:
    """Private network, pid and mount namespaces held open by a reaper as their PID 1."""

    def __init__(self) -> None:
        self.unshare = subprocess.Popen(["unshare", "--net", "--pid", "--fork", "--mount", "--mount-proc",
                                         "--propagation", "private", "--", sys.executable, "-c", REAPER],
                                        stderr=subprocess.DEVNULL)  # it complains when its child is killed
        deadline = time.time() + 10
        children = Path(f"/proc/{self.unshare.pid}/task/{self.unshare.pid}/children")
        while not (text := children.read_text().split()) and time.time() < deadline:
            assert self.unshare.poll() is None, "unshare could not make the namespaces"
            time.sleep(0.05)
        self.init = int(text[0])
        self.pid_ns = os.readlink(f"/proc/{self.init}/ns/pid")

    def run(self, command: list[str] | str, *, env: dict | None = None, cwd: Path = ROOT, timeout: float = 600,
            check: bool = True) -> subprocess.CompletedProcess:
        argv = ["bash", "-c", command] if isinstance(command, str) else command
        done = subprocess.run(["nsenter", "-t", str(self.init), "-n", "-m", "-p", f"--wd={cwd}", "--", *argv],
                              env=env, capture_output=True, text=True, timeout=timeout)
        if check and done.returncode != 0:
            raise AssertionError(f"{argv} exited {done.returncode}:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}")
        return done

    def processes(self) -> dict[int, str]:
        """host pid -> command line of every process in the namespace but its PID 1."""
        found = {}
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == self.init:
                continue
            try:
                if os.readlink(entry / "ns" / "pid") == self.pid_ns:
                    found[int(entry.name)] = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()[:200]
            except OSError:
                continue  # gone meanwhile
        return found

    def host_pid(self, pid: int) -> int:
        """The pid this machine knows a namespace's process by."""
        for host in self.processes():
            status = Path(f"/proc/{host}/status").read_text()
            if next(line for line in status.splitlines() if line.startswith("NSpid:")).split()[-1] == str(pid):
                return host
        raise AssertionError(f"no process {pid} in the namespace")

    def close(self) -> None:
        os.kill(self.init, signal.SIGKILL)  # the kernel kills whatever is left in the namespace with it
        self.unshare.wait(timeout=30)


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[-1][0] != "Z"
    except OSError:
        return False


def _wheelhouse() -> Path:
    """Every distribution `pip install -e .` needs, fetched while there is a network (the nodes have none); kept in
    ~/.cache/izf/test-tools/ under the hash of pyproject.toml, so it is fetched again only when the dependencies
    change."""
    key = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()[:16]
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "izf" / "test-tools"
    folder = cache / f"wheelhouse-{key}"
    if not folder.is_dir():
        partial = cache / f"wheelhouse-{key}.{os.getpid()}.part"
        shutil.rmtree(partial, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "-d", str(partial), str(ROOT)], check=True,
                       capture_output=True, timeout=900)
        partial.rename(folder)  # whole or not at all: a download cut short is fetched again next time
    return folder


@dataclasses.dataclass
class Node:
    ns: Namespace
    home: Path  # the node's home (root's, in the namespace)
    client: Path  # the home of whoever runs `ray up`
    key: Path
    user: str
    cluster_name: str


@pytest.fixture
def node(tmp_path):
    """The "machine" of the cluster: an sshd on 127.0.0.1 in a fresh namespace, root's home a tmp folder."""
    home, client, keys, ray_tmp = (tmp_path / d for d in ("node-home", "client-home", "sshd", "ray-tmp"))
    for d in (home / ".config" / "pip", client / ".ssh", client / ".ray", keys, ray_tmp):
        d.mkdir(parents=True)
    # The node installs from the wheelhouse (it has no network) and does not byte-compile every module of torch, Ray
    # and MLflow up front: 60 of the test's ~115 CPU-seconds went to that `pip install`, 17 without the compiling
    # (the modules a process imports are compiled when first imported, once).
    (home / ".config" / "pip" / "pip.conf").write_text(
        f"[global]\nno-index = true\nfind-links = {_wheelhouse()}\n\n[install]\ncompile = false\n")
    key = client / ".ssh" / "id_ed25519"
    for path in (key, keys / "host_ed25519"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    (keys / "authorized_keys").write_text(key.with_suffix(".pub").read_text())
    (client / ".ray" / "auth_token").write_text(secrets.token_hex(32) + "\n")
    user = pwd.getpwuid(0).pw_name
    passwd = tmp_path / "passwd"
    passwd.write_text("".join(":".join([*f.split(":")[:5], str(home), f.split(":")[6]]) if f.startswith(f"{user}:")
                              else f for f in Path("/etc/passwd").read_text().splitlines(keepends=True)))
    (keys / "sshd_config").write_text(
        f"ListenAddress 127.0.0.1:22\nHostKey {keys / 'host_ed25519'}\nPidFile {keys / 'sshd.pid'}\n"
        f"AuthorizedKeysFile {keys / 'authorized_keys'}\nPermitRootLogin prohibit-password\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\nPrintMotd no\n"
        "Subsystem sftp internal-sftp\n")
    name = f"izf-test-{secrets.token_hex(4)}"
    ns = Namespace()
    try:
        ns.run(f"ip link set lo up && mount --bind {passwd} /etc/passwd && mkdir -p /tmp/ray /run/sshd "
               f"&& mount --bind {ray_tmp} /tmp/ray && {SSHD} -f {keys / 'sshd_config'}")
        yield Node(ns, home, client, key, user, name)
    finally:
        ns.close()
        # ssh's shared-connection sockets: the one thing `ray up` keeps in this machine's own /tmp
        control = Path("/tmp") / f"ray_ssh_{hashlib.sha256(user.encode()).hexdigest()[:10]}"
        shutil.rmtree(control / hashlib.sha256(name.encode()).hexdigest()[:10], ignore_errors=True)
        if control.is_dir() and not any(control.iterdir()):
            control.rmdir()
    assert not _alive(ns.init)


def _write_config(path: Path, node: Node) -> Path:
    """cluster-local.yaml (with cluster.yaml's commands) pointed at the node: its address, login and a fresh name."""
    config = local_variant()
    config["cluster_name"] = node.cluster_name
    config["provider"].update(head_ip="127.0.0.1", worker_ips=[])
    config["auth"] = {"ssh_user": node.user, "ssh_private_key": str(node.key)}
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def test_ray_up_search_and_ray_down_on_a_local_cluster(tmp_path, node):
    ns, home, client = node.ns, node.home, node.client
    config = _write_config(tmp_path / "cluster.yaml", node)
    client_tmp = client / "tmp"  # the launcher's own Ray temp dir: on a real cluster it is another machine's
    client_tmp.mkdir()
    env = {**os.environ, "HOME": str(client), "TMPDIR": str(client_tmp), "RAY_TMPDIR": str(client_tmp)}
    timings = {}

    start = time.time()
    up = ns.run([str(RAY), "up", "-y", "--no-config-cache", str(config)], env=env, timeout=900, check=False)
    timings["ray up"] = time.time() - start
    assert up.returncode == 0, up.stdout[-6000:] + up.stderr[-3000:]
    assert (home / "izf" / "search" / "run.py").is_file() and not (home / "izf" / ".git").exists()
    assert (home / ".ray" / "auth_token").read_text() == (client / ".ray" / "auth_token").read_text()

    def on_head(command: str, timeout: float = 600) -> subprocess.CompletedProcess:
        return ns.run([str(RAY), "exec", str(config), command], env=env, timeout=timeout, check=False)

    installed = on_head("cd ~/izf && .venv/bin/python -c 'import izf, search, tracking; print(izf.__file__)'")
    assert f"{home}/izf/izf/__init__.py" in installed.stdout, installed.stdout[-3000:]
    after_up = ns.processes()
    assert any("gcs_server" in c for c in after_up.values()) and any("raylet" in c for c in after_up.values())

    search = ("cd ~/izf && RAY_AUTH_MODE=token .venv/bin/python search/run.py --address auto --dataset synthetic "
              "--num-samples 2 --max-steps 60 --eval-every 30 --grace-steps 30 --storage-path ~/ray_results "
              "--mlflow-uri sqlite:///$HOME/mlflow.db")
    for driver, says in ((f"RAY_AUTH_MODE=token RAY_AUTH_TOKEN={'0' * 64}", "refused this driver's token"),
                         ("RAY_AUTH_MODE=disabled", "requires Ray's token authentication")):
        refused = on_head(search.replace("RAY_AUTH_MODE=token", driver), timeout=120)
        assert refused.returncode != 0 and says in refused.stdout, refused.stdout[-3000:]
        assert "InvalidAuthToken" not in refused.stdout, "Ray's retries ran before the error"
    start = time.time()
    searched = on_head(search)
    timings["search on the cluster"] = time.time() - start
    assert searched.returncode == 0, searched.stdout[-6000:]

    (record,) = (home / "ray_results" / "izf-synthetic").glob("*/izf_search.json")
    trials = json.loads(record.read_text())["trials"]
    tracked = MlflowClient(f"sqlite:///{home / 'mlflow.db'}")
    runs = tracked.search_runs([tracked.get_experiment_by_name("izf-synthetic").experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    # Each trial's run ended as its trial did (ASHA may stop the one that reaches its rung second and worse: KILLED).
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert all(r.info.status == OUTCOMES[r.data.tags["izf.outcome"]] for r in runs if r is not parents[0])
    children = [r.data.tags.get("izf.trial_id") for r in runs
                if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id]
    assert len(trials) == 2 and sorted(children) == sorted(trials)  # one child run per trial

    seen = after_up | ns.processes()
    start = time.time()
    down = ns.run([str(RAY), "down", "-y", str(config)], env=env, timeout=300, check=False)
    timings["ray down"] = time.time() - start
    assert down.returncode == 0, down.stdout[-4000:] + down.stderr[-2000:]
    os.kill(ns.host_pid(int((tmp_path / "sshd" / "sshd.pid").read_text())), signal.SIGTERM)
    deadline = time.time() + 30  # ssh's shared connections close 10 s after their last use
    while any(_alive(p) for p in seen) and time.time() < deadline:
        time.sleep(0.5)
    left = {p: c for p, c in seen.items() if _alive(p)}
    assert not left, f"still running after ray down: {left}"
    assert not ns.processes()
    print(", ".join(f"{k}: {v:.1f} s" for k, v in timings.items()))
