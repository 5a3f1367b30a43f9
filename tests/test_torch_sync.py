"""torch `sync` drains the device the timing code relies on: the device of the tensors it is
given, or, given none (the timing loop's sync(None)), the current CUDA device. CUDA is faked
here (a recorder for torch.cuda.synchronize), so this runs on a CPU-only machine too."""

from __future__ import annotations

import pytest
import torch

from bench.backends import torch_adapter as tb


@pytest.fixture
def cuda_started(monkeypatch):
    calls = []
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 1)
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: calls.append(device))
    return calls


def test_sync_with_nothing_drains_the_current_cuda_device(cuda_started):
    assert tb.sync(None) is None
    assert tb.sync({"loss": 1.5}) == {"loss": 1.5}  # no tensor in it: the same
    assert cuda_started == [torch.device("cuda", 1)] * 2


def test_sync_of_cpu_tensors_waits_for_nothing(cuda_started):
    x = torch.zeros(2)
    assert tb.sync((x, None)) is not None and cuda_started == []


def test_sync_before_cuda_started_does_not_start_it(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: False)
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: pytest.fail("synchronized without CUDA"))
    assert tb.sync_device(None) is None and tb.sync(None) is None
