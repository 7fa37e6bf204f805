"""Shared test setup: offline, deterministic, one torch thread per xdist worker, and weight helpers."""

from __future__ import annotations

import math
import os
import socket
from types import SimpleNamespace

# Before anything imports huggingface_hub (timm does): tests never touch the network.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("WANDB_MODE", "offline")

import pytest  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

# pytest-xdist runs one process per core; torch's default (all cores per process) oversubscribes the CPUs.
if os.environ.get("PYTEST_XDIST_WORKER_COUNT"):
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"])))


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "slow: a few seconds or more on 2 CPU cores (still part of the default run; -m 'not slow' skips it)"
    )


_LOOPBACK = {"localhost", "127.0.0.1", "::1", "0.0.0.0", ""}
_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex


def _guard(real):
    def connect(self, address, *args, **kwargs):
        if self.family in (socket.AF_INET, socket.AF_INET6) and address[0] not in _LOOPBACK:
            raise RuntimeError(f"tests must not touch the network; something tried to connect to {address!r}")
        return real(self, address, *args, **kwargs)

    return connect


@pytest.fixture(autouse=True)
def _offline_and_seeded(monkeypatch):
    """Every test: no connection leaves the machine (loopback is allowed), and a fixed seed."""
    monkeypatch.setattr(socket.socket, "connect", _guard(_real_connect))
    monkeypatch.setattr(socket.socket, "connect_ex", _guard(_real_connect_ex))
    torch.manual_seed(0)


@torch.no_grad()
def randomize_(module: nn.Module, seed: int = 0, calibrate: torch.Tensor | None = None) -> nn.Module:
    """Overwrite every parameter and buffer of ``module`` with random values, in place.

    Default initialisations hide naming mistakes: BatchNorm and LayerNorm start as the identity (so two
    swapped norms give the same output) and timm zero-initialises the last BN of every ResNet block (so a
    branch whose weights went to the wrong place still outputs zero). After this every tensor is distinct.
    Weights keep a He-like scale. With ``calibrate`` (a batch of inputs), BatchNorm running statistics are
    then set to that batch's statistics, which keeps the activations of deep ResNets O(1) instead of
    growing geometrically with depth, so that a tolerance on the outputs still means something.
    """
    g = torch.Generator().manual_seed(seed)
    for name, t in module.state_dict(keep_vars=True).items():
        t = t.data
        leaf = name.rsplit(".", 1)[-1]
        if not t.is_floating_point():
            t.zero_()  # num_batches_tracked
        elif leaf == "running_var":
            t.uniform_(0.5, 1.5, generator=g)
        elif leaf in ("cls_token", "pos_embed"):
            t.uniform_(-0.1, 0.1, generator=g)
        elif t.dim() <= 1:
            if leaf == "weight":  # a norm's scale
                t.uniform_(0.5, 1.5, generator=g)
            else:  # biases, running means
                t.uniform_(-0.2, 0.2, generator=g)
        else:
            bound = math.sqrt(6.0 / t[0].numel())
            t.uniform_(-bound, bound, generator=g)
    norms = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if calibrate is not None and norms:
        momenta = [m.momentum for m in norms]
        for m in norms:
            m.reset_running_stats()
            m.momentum = None  # cumulative average: after one batch, exactly that batch's statistics
        was_training = module.training
        module.train()
        module(calibrate)
        module.train(was_training)
        for m, momentum in zip(norms, momenta):
            m.momentum = momentum
    return module


def materialize(build, fill: float = float("nan")) -> nn.Module:
    """``build()`` on the meta device (no init cost), then real CPU storage filled with ``fill``.

    NaN makes any tensor that a later load fails to overwrite show up in the outputs, and it guarantees
    that recycled memory (a model freed a moment ago) cannot pass for correctly loaded weights.
    """
    with torch.device("meta"):
        model = build()
    model.to_empty(device="cpu")
    with torch.no_grad():
        for t in model.state_dict().values():
            t.fill_(fill if t.is_floating_point() else 0)
    return model


def num_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def assert_same_outputs(actual: torch.Tensor, expected: torch.Tensor, tol: float = 1e-4) -> None:
    """fp32 outputs of two implementations of one network agree within ``tol`` (absolute and relative)."""
    assert actual.shape == expected.shape
    assert torch.isfinite(expected).all(), "reference output is not finite; the comparison would mean nothing"
    assert expected.abs().max() < 1e3, "reference output too large for the tolerance to mean something"
    torch.testing.assert_close(actual, expected, rtol=tol, atol=tol)


@pytest.fixture(scope="session")
def helpers() -> SimpleNamespace:
    """The helpers above, for the test modules (a conftest is not meant to be imported)."""
    return SimpleNamespace(
        randomize_=randomize_, materialize=materialize, num_params=num_params, assert_same_outputs=assert_same_outputs
    )
