"""nn tests run torch single-threaded: the networks are tiny, and on a busy machine torch's
thread pool turns each small matmul into milliseconds of waiting. Restored after each test."""

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
