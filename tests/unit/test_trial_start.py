"""A trial whose workers find no free resources is retried, for `resources.start_timeout_s`, then told so."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from raytune_llm.executors.env import START_ATTEMPT_S, WORKER_ENV
from raytune_llm.executors.train import placement_retries, start_failure
from raytune_llm.schema import ResourcesConfig


def test_attempts_span_the_start_timeout() -> None:
    assert WORKER_ENV["RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S"] == str(START_ATTEMPT_S) == "30"
    assert placement_retries(ResourcesConfig()) == 29  # 900 s = 30 attempts of 30 s: 29 after the first
    assert placement_retries(ResourcesConfig(start_timeout_s=31)) == 1
    assert placement_retries(ResourcesConfig(start_timeout_s=5)) == 0  # one attempt, never less
    assert placement_retries(ResourcesConfig(start_timeout_s=None)) == -1  # Train's "without end"
    with pytest.raises(ValidationError, match="greater than 0"):
        ResourcesConfig(start_timeout_s=0)


def test_a_start_timeout_names_the_setting_and_other_failures_pass_through() -> None:
    import ray.train
    from ray.train.v2._internal.exceptions import WorkerGroupStartupFailedError, WorkerGroupStartupTimeoutError

    resources = ResourcesConfig(num_workers=2, start_timeout_s=120)
    explained = start_failure(ray.train.ControllerError(WorkerGroupStartupTimeoutError(num_workers=2)), resources)
    assert explained is not None
    assert str(explained).startswith("the trial's 2 worker(s) found no free resources within "
                                     "resources.start_timeout_s=120 s")
    assert "RAY_TRAIN" not in str(explained)
    assert start_failure(ray.train.ControllerError(WorkerGroupStartupFailedError("boom")), resources) is None
    assert start_failure(RuntimeError("x"), resources) is None
