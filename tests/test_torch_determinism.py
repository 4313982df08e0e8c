"""Deterministic kernels for one block, and the settings restored after it."""

import os

import pytest
import torch

from rdlab.torch_determinism import CUBLAS_WORKSPACE, deterministic_algorithms


def test_the_block_runs_deterministic_and_everything_is_restored(monkeypatch):
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    assert not torch.are_deterministic_algorithms_enabled()
    with pytest.raises(KeyError), deterministic_algorithms():
        assert torch.are_deterministic_algorithms_enabled()
        assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == CUBLAS_WORKSPACE
        raise KeyError("an error inside the block")
    assert not torch.are_deterministic_algorithms_enabled()
    assert "CUBLAS_WORKSPACE_CONFIG" not in os.environ
    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", ":16:8")  # the user's choice stays
    with deterministic_algorithms():
        assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":16:8"
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":16:8"
    with deterministic_algorithms(False):
        assert not torch.are_deterministic_algorithms_enabled()
