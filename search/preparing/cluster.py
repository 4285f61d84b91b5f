"""The Ray cluster a search runs on: a local instance, or one joined by address; what it can offer trials."""

import contextlib
import logging
import os
import socket
from collections.abc import Iterator
from pathlib import Path

from izf.errors import ConfigError

__all__ = ["check_address", "check_token", "start_ray", "check_resources"]

CONNECT_TIMEOUT_S = 5.0
AUTOSCALER_CONFIG = Path("~/ray_bootstrap_config.yaml").expanduser()  # written by `ray up` on the head node


# An HTTP/2 client's connection preface: the magic string and an empty SETTINGS frame (RFC 9113 3.4).
HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])


def check_address(address: str | None) -> None:
    """Fail in seconds unless a Ray cluster answers at `address` (Ray itself retries for minutes, in C++
    where Ctrl-C cannot stop it). Ray's GCS and Ray Client are gRPC servers, and an HTTP/2 server opens
    with a SETTINGS frame: a port that accepts the connection but answers otherwise is not Ray.

    "auto" is left to Ray, which fails at once when it finds no cluster on this machine; with Ray's TLS
    (RAY_USE_TLS) only the connection is tried.
    """
    if address is None or address == "auto":
        return
    host_port = address.removeprefix("ray://")
    host, sep, port = host_port.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ConfigError(f"--address {address!r}: expected 'auto', HOST:PORT (a head node's GCS, port 6379 by "
                          "default) or ray://HOST:10001 (Ray Client)")
    fix = ("start it (`ray up cluster.yaml`, or `ray start --head` on that host) or check the address; without "
           "--address the search starts a local Ray")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_TIMEOUT_S) as conn:
            if os.environ.get("RAY_USE_TLS", "0") in ("0", ""):
                conn.sendall(HTTP2_PREFACE)
                if _frame_type(conn) != 4:
                    raise ConfigError(f"--address {address}: something answers there, but not a Ray cluster (no "
                                      f"gRPC server); {fix}")
    except OSError as e:
        reason = f"no answer within {CONNECT_TIMEOUT_S:.0f} s" if isinstance(e, TimeoutError) else \
            (e.strerror or str(e)).lower()
        raise ConfigError(f"--address {address}: no Ray cluster answers there ({reason}); {fix}") from None


def _frame_type(conn: socket.socket) -> int | None:
    """The type of the first HTTP/2 frame the server sends (None when it closes or says something else)."""
    header = b""
    while len(header) < 9:
        chunk = conn.recv(9 - len(header))
        if not chunk:
            return None
        header += chunk
    return header[3]


def check_token(address: str) -> None:
    """Fail at once when the cluster refuses this driver's token (Ray's token auth, as cluster.yaml starts it).
    Ray itself retries a refused token for about 20 s, logging a warning a second, and then says only that it
    could not connect. One GCS call tells, with the token Ray's own loader finds (RAY_AUTH_MODE=token, then
    RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token)."""
    from ray._private.services import canonicalize_bootstrap_address
    from ray._raylet import GcsClient
    from ray.exceptions import AuthenticationError, RayError

    if address.startswith("ray://"):
        return  # Ray Client: its server authenticates the connection itself
    try:
        with _native_stderr_silenced():  # Ray's C++ client logs the refusal too: the error below says it once
            gcs = canonicalize_bootstrap_address(address)  # "auto": the cluster `ray start` recorded here
            if address == "auto":
                check_address(gcs)  # a cluster recorded but gone: Ray's client would wait for it for 40 s
            GcsClient(address=gcs).internal_kv_get(b"izf-token-probe", b"izf", timeout=CONNECT_TIMEOUT_S)
    except AuthenticationError:
        if os.environ.get("RAY_AUTH_MODE") != "token":
            raise ConfigError(f"--address {address}: the cluster at {gcs} requires Ray's token authentication; "
                              "run the search with RAY_AUTH_MODE=token (the token is read from "
                              "~/.ray/auth_token, which `ray up` puts on the head)") from None
        raise ConfigError(f"--address {address}: the cluster at {gcs} refused this driver's token; use the "
                          "cluster's (`ray up` puts it in ~/.ray/auth_token on the head; RAY_AUTH_TOKEN or "
                          "RAY_AUTH_TOKEN_PATH, when set, are read instead of that file)") from None
    except (ConnectionError, ValueError, TypeError, RayError):
        return  # no cluster there, or another failure: ray.init reports it in its own words


@contextlib.contextmanager
def _native_stderr_silenced() -> Iterator[None]:
    kept = os.dup(2)
    try:
        with open(os.devnull, "wb") as devnull:
            os.dup2(devnull.fileno(), 2)
        yield
    finally:
        os.dup2(kept, 2)
        os.close(kept)


def start_ray(address: str | None, *, verbose: bool) -> None:
    """Start a local Ray instance (address None) or join a cluster (`check_address` it first, before any work);
    Ray's own log lines only when verbose."""
    import ray

    if ray.is_initialized():
        return
    if address is not None:
        check_token(address)
    quiet = {} if verbose else {"logging_level": logging.WARNING}
    try:
        if address is None:
            ray.init(address="local", num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=verbose,
                     **quiet)
        else:
            ray.init(address=address, log_to_driver=verbose, **quiet)
    except ConnectionError as e:
        raise ConfigError(f"--address {address}: {e} (after `ray up cluster.yaml`, run the search on the head "
                          "node, or give the head's address)") from None


def _autoscaler_can_add(resource: str) -> bool:
    """Whether the autoscaler of this cluster (after `ray up`) has a worker type that brings `resource`.

    `ray up` fills each node type's `resources` (CPU, GPU, memory) from the cloud's instance-type data
    (EC2's, for AWS) before it writes the bootstrap config, so what a type declares there is what it
    brings; a type that declares no CPU count still has CPUs (Ray counts them when the node starts).
    """
    if not AUTOSCALER_CONFIG.is_file():
        return False
    import yaml

    node_types = (yaml.safe_load(AUTOSCALER_CONFIG.read_text()) or {}).get("available_node_types", {})
    for node in node_types.values():
        if node.get("max_workers", 0) <= 0:
            continue
        declared = (node.get("resources") or {}).get(resource)
        if declared or (declared is None and resource == "CPU"):
            return True
    return False


def check_resources(cpus_per_trial: float, gpus_per_trial: float) -> None:
    """Refuse a trial size the cluster cannot ever place (Ray would wait for it forever)."""
    import ray

    resources = ray.cluster_resources()
    if gpus_per_trial > 0 and resources.get("GPU", 0) == 0 and not _autoscaler_can_add("GPU"):
        raise ConfigError(
            f"--gpus-per-trial {gpus_per_trial} asked for, but the Ray cluster has no GPU and its "
            f"autoscaler cannot add one: no worker type in {AUTOSCALER_CONFIG} declares a GPU (trials would wait "
            "forever); use --gpus-per-trial 0, start GPU workers, or give the GPU worker type resources: {GPU: N}"
        )
    if cpus_per_trial > resources.get("CPU", 0) and not _autoscaler_can_add("CPU"):
        raise ConfigError(f"--cpus-per-trial {cpus_per_trial} exceeds the cluster's {resources.get('CPU', 0)} CPUs")
