"""One real local Ray for all integration tests (starting Ray costs seconds; tests share it)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture(scope="session")
def ray_session() -> Iterator[None]:
    import ray

    from raytune_llm.executors.env import WORKER_ENV

    # 3 CPUs on a 2-core machine: a 2-worker trial plus its Tune driver's small share must fit.
    ray.init(num_cpus=3, include_dashboard=True, dashboard_host="127.0.0.1", log_to_driver=False,
             runtime_env={"env_vars": WORKER_ENV})
    yield
    ray.shutdown()
