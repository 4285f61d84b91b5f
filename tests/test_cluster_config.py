"""cluster.yaml and cluster-local.yaml pass the schema shipped in the installed ray package, mount only what
exists, and run the same setup and start commands but for the one marked line (tests/test_ray_up.py runs them)."""

from pathlib import Path

import pytest
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

ROOT = Path(__file__).resolve().parents[1]
FILES = ("cluster.yaml", "cluster-local.yaml")
# What `ray up` does on a node, the same whatever the provider.
SHARED = ("file_mounts", "rsync_exclude", "setup_commands", "head_start_ray_commands", "worker_start_ray_commands")


def cluster_config(name: str = "cluster.yaml") -> dict:
    return yaml.safe_load((ROOT / name).read_text())


def _is_dataset_line(command: str) -> bool:
    """The one setup command the two files word differently (marked DIFFERS): which datasets a node gets."""
    return "-m izf.data " in command


def local_variant() -> dict:
    """cluster-local.yaml as tests/test_ray_up.py brings it up: its provider and login, its dataset line, and
    everything else cluster.yaml's own, so that a broken command in cluster.yaml fails that test."""
    aws, local = cluster_config("cluster.yaml"), cluster_config("cluster-local.yaml")
    dataset_line = next(c for c in local["setup_commands"] if _is_dataset_line(c))
    variant = {**local, **{key: aws[key] for key in SHARED}}
    variant["setup_commands"] = [dataset_line if _is_dataset_line(c) else c for c in aws["setup_commands"]]
    return variant


@pytest.mark.parametrize("name", FILES)
def test_cluster_file_is_valid_for_the_installed_ray(name):
    validate_config(prepare_config(cluster_config(name)))


@pytest.mark.parametrize("name", FILES)
def test_mounted_local_paths_exist(name):
    for remote, local in cluster_config(name)["file_mounts"].items():
        if local.startswith("~"):
            continue  # a file on the user's machine (the auth token), not in the repo
        assert (ROOT / local).exists(), f"{name}: {remote} mounts {local}, which is not in the repo"


def test_local_file_runs_cluster_yamls_commands_but_the_dataset_line():
    aws, local = cluster_config("cluster.yaml"), cluster_config("cluster-local.yaml")
    assert local["provider"]["type"] == "local" and "available_node_types" not in local
    variant = local_variant()
    for key in SHARED:
        assert local[key] == variant[key], f"cluster-local.yaml's {key} differs from cluster.yaml's"
    marked = [[i for i, c in enumerate(f["setup_commands"]) if _is_dataset_line(c)] for f in (aws, local)]
    assert marked[0] == marked[1] and len(marked[0]) == 1, "one dataset line, at the same place in both files"
    assert "# DIFFERS from cluster.yaml" in (ROOT / "cluster-local.yaml").read_text()


def test_head_is_on_demand_and_gpu_workers_autoscale_from_zero():
    nodes = cluster_config()["available_node_types"]
    assert "InstanceMarketOptions" not in nodes["head"]["node_config"]
    assert nodes["gpu_worker"]["min_workers"] == 0
    assert nodes["gpu_worker"]["node_config"]["InstanceMarketOptions"]["MarketType"] == "spot"
    for name in FILES:
        starts = " ".join(cluster_config(name)["head_start_ray_commands"])
        assert "--dashboard-host=127.0.0.1" in starts and "RAY_AUTH_MODE=token" in starts
# EC2's describe_instance_types data for the two instance types cluster.yaml uses.
EC2 = {"m6i.2xlarge": {"InstanceType": "m6i.2xlarge", "VCpuInfo": {"DefaultVCpus": 8}},
       "g6.xlarge": {"InstanceType": "g6.xlarge", "VCpuInfo": {"DefaultVCpus": 4},
                     "GpuInfo": {"Gpus": [{"Name": "L4", "Manufacturer": "NVIDIA", "Count": 1}]}}}


def _as_ray_up_writes_it(config: dict) -> dict:
    """The bootstrap config `ray up` writes to the head node: each node type's resources filled in from EC2's
    data (Ray's AWSNodeProvider.fillout_available_node_types_resources, which needs boto3; the GPU count is
    its NVIDIA accelerator manager's), what the type declares itself taking precedence."""
    from ray._private.accelerators import NvidiaGPUAcceleratorManager

    config = prepare_config(config)
    for node in config["available_node_types"].values():
        kind = node["node_config"]["InstanceType"]
        found = {"CPU": EC2[kind]["VCpuInfo"]["DefaultVCpus"]}
        if gpus := NvidiaGPUAcceleratorManager.get_ec2_instance_num_accelerators(kind, EC2):
            found["GPU"] = gpus
        node["resources"] = {**found, **(node.get("resources") or {})}
    return config


def test_gpu_check_knows_the_autoscaler_can_add_gpu_workers(tmp_path, monkeypatch):
    import search.preparing.cluster as cluster

    bootstrap = tmp_path / "ray_bootstrap_config.yaml"
    monkeypatch.setattr(cluster, "AUTOSCALER_CONFIG", bootstrap)
    assert not cluster._autoscaler_can_add("GPU")  # no autoscaler: a plain local cluster
    config = cluster_config()
    assert config["available_node_types"]["gpu_worker"]["node_config"]["InstanceType"] == "g6.xlarge"
    bootstrap.write_text(yaml.safe_dump(_as_ray_up_writes_it(config)))
    assert yaml.safe_load(bootstrap.read_text())["available_node_types"]["gpu_worker"]["resources"]["GPU"] == 1
    assert cluster._autoscaler_can_add("GPU") and cluster._autoscaler_can_add("CPU")
    config["available_node_types"]["gpu_worker"]["node_config"]["InstanceType"] = "m6i.2xlarge"  # no GPU in it
    bootstrap.write_text(yaml.safe_dump(_as_ray_up_writes_it(config)))
    assert not cluster._autoscaler_can_add("GPU") and cluster._autoscaler_can_add("CPU")
