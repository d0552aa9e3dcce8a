"""The cluster configs we ship: launcher YAMLs valid against the schema Ray ships, Kubernetes manifests with the
fields KubeRay needs, a Slurm script that starts Ray and runs a search."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import ray.autoscaler
import yaml

CLUSTER = Path(__file__).resolve().parents[2] / "cluster"


@pytest.mark.parametrize("name", ["aws.yaml", "gcp.yaml"])
def test_launcher_configs_match_rays_schema(name: str) -> None:
    schema = json.loads((Path(ray.autoscaler.__file__).parent / "ray-schema.json").read_text())
    config = yaml.safe_load((CLUSTER / name).read_text())
    jsonschema.validate(config, schema)
    head = config["available_node_types"][config["head_node_type"]]
    assert head["resources"].get("GPU", 0) == 0  # the driver's node holds no GPU work
    assert any("raytune-llm" in c for c in config["setup_commands"])


def test_kuberay_manifests_have_the_required_fields() -> None:
    cluster = yaml.safe_load((CLUSTER / "kuberay" / "raycluster.yaml").read_text())
    job = yaml.safe_load((CLUSTER / "kuberay" / "rayjob.yaml").read_text())
    assert (cluster["apiVersion"], cluster["kind"]) == ("ray.io/v1", "RayCluster")
    assert (job["apiVersion"], job["kind"]) == ("ray.io/v1", "RayJob")
    for spec in (cluster["spec"], job["spec"]["rayClusterSpec"]):
        assert spec["headGroupSpec"]["template"]["spec"]["containers"][0]["image"]
        for group in spec["workerGroupSpecs"]:
            assert group["groupName"] and group["template"]["spec"]["containers"][0]["image"]
            assert group["minReplicas"] <= group["maxReplicas"]
    assert job["spec"]["entrypoint"].startswith("raytune-llm search")
    assert "--address auto" in job["spec"]["entrypoint"]
    for doc in (cluster, job):
        assert doc["metadata"]["name"]


def test_slurm_script_starts_ray_and_runs_a_search() -> None:
    script = (CLUSTER / "slurm" / "search.sbatch").read_text()
    assert script.startswith("#!/bin/bash") and "#SBATCH --nodes" in script
    assert "ray start --head" in script and "ray start --address" in script
    assert "raytune-llm search" in script and "--address" in script
