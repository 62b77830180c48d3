"""Shared test configuration: hypothesis profiles (CI: bounded and derandomised)."""

import os

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    max_examples=25,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile("dev", max_examples=50, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture
def one_torch_thread():
    """Tiny models: one torch thread is faster and immune to a busy machine; restored afterwards."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True, scope="session")
def sb3_log_folder(tmp_path_factory):
    """SB3 makes a log folder at every ``learn()``: in $SB3_LOGDIR, else a new ``SB3-<time>`` in
    the system's temp folder, where one test run would leave dozens of empty ones. Point it into
    pytest's own temp tree, which pytest prunes."""
    folder = tmp_path_factory.mktemp("sb3_logs")
    before = os.environ.get("SB3_LOGDIR")
    os.environ["SB3_LOGDIR"] = str(folder)
    yield folder
    if before is None:
        os.environ.pop("SB3_LOGDIR", None)
    else:
        os.environ["SB3_LOGDIR"] = before
