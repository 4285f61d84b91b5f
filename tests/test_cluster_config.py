"""cluster.yaml passes the schema shipped in the installed ray package, and mounts only what exists."""

from pathlib import Path

import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

ROOT = Path(__file__).resolve().parents[1]


def _config() -> dict:
    return yaml.safe_load((ROOT / "cluster.yaml").read_text())


def test_cluster_yaml_is_valid_for_the_installed_ray():
    validate_config(prepare_config(_config()))


def test_mounted_local_paths_exist():
    config = _config()
    for remote, local in config["file_mounts"].items():
        if local.startswith("~"):
            continue  # a file on the user's machine (the auth token), not in the repo
        assert (ROOT / local).exists(), f"{remote} mounts {local}, which is not in the repo"


def test_head_is_on_demand_and_gpu_workers_autoscale_from_zero():
    nodes = _config()["available_node_types"]
    assert "InstanceMarketOptions" not in nodes["head"]["node_config"]
    assert nodes["gpu_worker"]["min_workers"] == 0
    assert nodes["gpu_worker"]["node_config"]["InstanceMarketOptions"]["MarketType"] == "spot"
    starts = " ".join(_config()["head_start_ray_commands"])
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
    import search.cluster as cluster

    bootstrap = tmp_path / "ray_bootstrap_config.yaml"
    monkeypatch.setattr(cluster, "AUTOSCALER_CONFIG", bootstrap)
    assert not cluster._autoscaler_can_add("GPU")  # no autoscaler: a plain local cluster
    config = _config()
    assert config["available_node_types"]["gpu_worker"]["node_config"]["InstanceType"] == "g6.xlarge"
    bootstrap.write_text(yaml.safe_dump(_as_ray_up_writes_it(config)))
    assert yaml.safe_load(bootstrap.read_text())["available_node_types"]["gpu_worker"]["resources"]["GPU"] == 1
    assert cluster._autoscaler_can_add("GPU") and cluster._autoscaler_can_add("CPU")
    config["available_node_types"]["gpu_worker"]["node_config"]["InstanceType"] = "m6i.2xlarge"  # no GPU in it
    bootstrap.write_text(yaml.safe_dump(_as_ray_up_writes_it(config)))
    assert not cluster._autoscaler_can_add("GPU") and cluster._autoscaler_can_add("CPU")
