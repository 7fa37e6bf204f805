"""The one skip connection in bridge: ``post_act(shortcut(x) + branch(x))``."""

from __future__ import annotations

from torch import Tensor, nn


class Residual(nn.Module):
    """Wrap ``branch`` in a skip connection.

    ResNet blocks, both halves of every Transformer block and the VLA trunk are built from this
    module, so "plain vs residual" is one flag: with ``skip=False`` the same weights compute
    ``post_act(branch(x))``. ``skip`` is a plain attribute and may be flipped on a built model
    (see :func:`set_skip`).
    """

    def __init__(
        self,
        branch: nn.Module,
        shortcut: nn.Module | None = None,
        post_act: nn.Module | None = None,
        skip: bool = True,
    ) -> None:
        super().__init__()
        self.branch = branch
        self.shortcut = shortcut if shortcut is not None else nn.Identity()
        self.post_act = post_act if post_act is not None else nn.Identity()
        self.skip = skip

    def forward(self, x: Tensor) -> Tensor:
        out = self.branch(x)
        if self.skip:
            # The residual: the branch only has to learn the change F(x), and the gradient reaches
            # x through the shortcut untouched by the branch's weights.
            out = self.shortcut(x) + out
        return self.post_act(out)

    def extra_repr(self) -> str:
        return f"skip={self.skip}"


def set_skip(model: nn.Module, skip: bool) -> nn.Module:
    """Set ``skip`` on every :class:`Residual` inside ``model``; return ``model``."""
    for module in model.modules():
        if isinstance(module, Residual):
            module.skip = skip
    return model
