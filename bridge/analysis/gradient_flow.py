"""How much gradient reaches each block: the skip connection's effect, measured.

In a plain network the gradient reaching block i is a product of the Jacobians of every block above it;
with ``x + F(x)`` each factor is ``I + dF/dx``, so the identity path carries the signal down even where the
branches' Jacobians are small. :func:`block_gradient_norms` reads the gradient norm of each block's
parameters after one backward pass, in depth order, for plots side by side.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bridge.errors import ConfigError


def blocks(model: nn.Module) -> dict[str, nn.Module]:
    """The residual blocks of ``model`` in depth order (ResNet blocks, each half of a Transformer block),
    or, for networks without any, its parameterised leaf layers (LeNet, AlexNet, VGG)."""
    from bridge.nn import Residual  # analysis may be imported without the model zoo

    residual = {name: m for name, m in model.named_modules() if isinstance(m, Residual)}
    if residual:
        # Nested Residuals (none in the zoo today) would count twice; keep the outermost.
        return {n: m for n, m in residual.items() if not any(n.startswith(o + ".") for o in residual if o != n)}
    return {n: m for n, m in model.named_modules() if not list(m.children()) and any(True for _ in m.parameters())}


def block_gradient_norms(model: nn.Module) -> dict[str, float]:
    """L2 norm of the current ``.grad`` of each block's parameters (0 where none flowed)."""
    norms = {}
    for name, block in blocks(model).items():
        grads = [p.grad for p in block.parameters() if p.grad is not None]
        norms[name] = float(torch.linalg.vector_norm(torch.stack([g.norm() for g in grads]))) if grads else 0.0
    return norms


def gradient_flow(
    model: nn.Module, batches: Iterable[tuple[Tensor, Tensor]], steps: int, lr: float = 0.01
) -> dict[str, dict[str, float]]:
    """Per-block gradient norms at initialisation and after ``steps`` SGD steps on ``batches``.

    The same first batch measures both, so the two readings differ only by the training in between.
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ConfigError(f"steps must be an integer, 1 or more, got {steps!r}")
    if not (math.isfinite(lr) and lr > 0):
        raise ConfigError(f"lr must be a finite number above 0, got {lr!r}")
    iterator: Iterator[tuple[Tensor, Tensor]] = iter(batches)
    probe = next(iterator)
    model.train()

    def measure() -> dict[str, float]:
        model.zero_grad(set_to_none=True)
        F.cross_entropy(model(probe[0]), probe[1]).backward()
        return block_gradient_norms(model)

    at_init = measure()
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    for _ in range(steps):
        try:
            images, labels = next(iterator)
        except StopIteration:
            iterator = iter(batches)
            images, labels = next(iterator)
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(model(images), labels).backward()
        optimizer.step()
    return {"init": at_init, f"after {steps} steps": measure()}
