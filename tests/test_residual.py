"""Residual, the one skip connection, and the shortcut options A/B/C."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import bridge
from bridge import create_model
from bridge.nn import PadShortcut, Residual, make_shortcut, projection, set_skip

CIFAR_DEPTHS = (20, 32, 44, 56, 110)


# --------------------------------------------------------------------------------------------- Residual


def test_residual_is_post_act_of_shortcut_plus_branch():
    branch, shortcut, post_act = nn.Linear(6, 6), nn.Linear(6, 6, bias=False), nn.Tanh()
    block = Residual(branch, shortcut, post_act)
    x = torch.randn(4, 6)
    expected = torch.tanh(x @ shortcut.weight.T + (x @ branch.weight.T + branch.bias))
    torch.testing.assert_close(block(x), expected)


def test_residual_without_skip_is_post_act_of_branch():
    branch, shortcut = nn.Linear(6, 6), nn.Linear(6, 6, bias=False)
    block = Residual(branch, shortcut, nn.ReLU(), skip=False)
    x = torch.randn(4, 6)
    torch.testing.assert_close(block(x), torch.relu(x @ branch.weight.T + branch.bias))


def test_residual_defaults_to_identity_shortcut_and_no_post_act():
    branch = nn.Linear(5, 5)
    x = torch.randn(3, 5)
    torch.testing.assert_close(Residual(branch)(x), x + branch(x))
    # Negative values survive: there is no activation after the sum by default.
    assert (Residual(branch)(x) < 0).any()


def test_skip_is_a_plain_attribute_not_state():
    block = Residual(nn.Linear(4, 4))
    assert block.skip is True
    assert set(block.state_dict()) == {"branch.weight", "branch.bias"}
    x = torch.randn(2, 4)
    with_skip = block(x)
    block.skip = False  # flipping it on the built module changes what it computes, weights untouched
    torch.testing.assert_close(block(x), block.branch(x))
    assert not torch.allclose(with_skip, block(x))
    assert "skip=False" in repr(block)


def test_set_skip_flips_every_residual_and_returns_the_model():
    model = nn.Sequential(Residual(nn.Linear(3, 3)), nn.Sequential(Residual(Residual(nn.Linear(3, 3)))))
    residuals = [m for m in model.modules() if isinstance(m, Residual)]
    assert len(residuals) == 3
    assert set_skip(model, False) is model
    assert [r.skip for r in residuals] == [False] * 3
    set_skip(model, True)
    assert [r.skip for r in residuals] == [True] * 3


@pytest.mark.parametrize("skip", [True, False])
def test_gradient_highway_through_an_all_zero_branch(skip):
    """With a dead branch the gradient still reaches x through the shortcut, and only through it."""
    depth = 30
    blocks = []
    for _ in range(depth):
        branch = nn.Linear(8, 8)
        nn.init.zeros_(branch.weight)
        nn.init.zeros_(branch.bias)
        blocks.append(Residual(branch, skip=skip))
    net = nn.Sequential(*blocks)
    x = torch.randn(4, 8, requires_grad=True)
    net(x).sum().backward()
    if skip:
        # y = x exactly, so dL/dx = 1 everywhere, undiminished after 30 blocks.
        torch.testing.assert_close(x.grad, torch.ones_like(x))
    else:
        assert torch.count_nonzero(x.grad) == 0


@pytest.mark.parametrize("skip", [True, False])
def test_gradient_highway_in_a_real_resnet(skip):
    """resnet20 with zero_init_last: every branch ends in a BN with gamma = 0, i.e. outputs zero."""
    model = create_model("resnet20", zero_init_last=True, skip=skip).eval()
    x = torch.randn(2, 3, 32, 32, requires_grad=True)
    model(x).sum().backward()
    if skip:
        assert x.grad.abs().sum() > 0
    else:
        assert torch.count_nonzero(x.grad) == 0


# ------------------------------------------------------------------------------------ plain vs residual


@pytest.mark.parametrize("depth", CIFAR_DEPTHS)
def test_plain_and_resnet_cifar_twins_have_the_same_parameters(depth, helpers):
    with torch.device("meta"):
        plain, res = create_model(f"plain{depth}"), create_model(f"resnet{depth}")
    assert helpers.num_params(plain) == helpers.num_params(res)
    shapes = {k: v.shape for k, v in res.state_dict().items()}
    assert {k: v.shape for k, v in plain.state_dict().items()} == shapes
    plain_flags = {m.skip for m in plain.modules() if isinstance(m, Residual)}
    res_flags = {m.skip for m in res.modules() if isinstance(m, Residual)}
    assert plain_flags == {False} and res_flags == {True}
    # 6n+2 layers: three stages of n two-layer blocks.
    assert sum(isinstance(m, Residual) for m in res.modules()) == (depth - 2) // 2


@pytest.mark.parametrize("train", [False, True], ids=["eval", "train"])
def test_plain20_with_resnet20_weights_and_skip_on_is_resnet20(train, helpers):
    resnet = helpers.randomize_(create_model("resnet20"), seed=1).train(train)
    plain = create_model("plain20").train(train)
    plain.load_state_dict(resnet.state_dict(), strict=True)
    x = torch.randn(4, 3, 32, 32)

    assert not torch.allclose(plain(x), resnet(x)), "skip=False must change the network"
    set_skip(plain, True)
    torch.testing.assert_close(plain(x), resnet(x), rtol=0, atol=0)

    # ... and back: the residual net with skip off is the plain net.
    set_skip(resnet, False)
    reference_plain = create_model("plain20").train(train)
    reference_plain.load_state_dict(plain.state_dict(), strict=True)
    torch.testing.assert_close(resnet(x), reference_plain(x), rtol=0, atol=0)


def test_plain18_flipped_is_resnet18_with_option_a_shortcuts(helpers):
    """An ImageNet plain net owns no projections; flipped on, it is a ResNet-18 with option A shortcuts."""
    resnet_a = helpers.randomize_(create_model("resnet18", shortcut="A", num_classes=5), seed=2).eval()
    plain = create_model("plain18", num_classes=5).eval()
    plain.load_state_dict(resnet_a.state_dict(), strict=True)
    x = torch.randn(2, 3, 64, 64)
    set_skip(plain, True)
    torch.testing.assert_close(plain(x), resnet_a(x), rtol=0, atol=0)


# ------------------------------------------------------------------------------------- shortcut options


def test_option_a_is_parameter_free_subsample_and_zero_channels():
    shortcut = PadShortcut(16, 32, stride=2)
    assert list(shortcut.parameters()) == [] and list(shortcut.buffers()) == []
    x = torch.randn(2, 16, 9, 9)
    expected = torch.cat([x[:, :, ::2, ::2], torch.zeros(2, 16, 5, 5)], dim=1)
    torch.testing.assert_close(shortcut(x), expected, rtol=0, atol=0)
    assert shortcut(x).shape == (2, 32, 5, 5)


def test_option_a_rejects_narrowing():
    with pytest.raises(ValueError, match="in_chs=32 > out_chs=16"):
        PadShortcut(32, 16)


def test_make_shortcut_options():
    # Same shape: identity (None) for A and B, a projection for C.
    assert make_shortcut("A", 16, 16, 1) is None
    assert make_shortcut("B", 16, 16, 1) is None
    c = make_shortcut("C", 16, 16, 1)
    assert isinstance(c, nn.Sequential) and sum(p.numel() for p in c.parameters()) == 16 * 16 + 2 * 16
    # Shape changes: A pads, B and C project with the block's stride.
    assert isinstance(make_shortcut("A", 16, 32, 2), PadShortcut)
    for option in ("B", "C"):
        proj = make_shortcut(option, 16, 32, 2)
        conv, bn = proj
        assert isinstance(conv, nn.Conv2d) and conv.kernel_size == (1, 1) and conv.stride == (2, 2)
        assert conv.bias is None and isinstance(bn, nn.BatchNorm2d)
        assert proj(torch.randn(1, 16, 8, 8)).shape == (1, 32, 4, 4)
    # A plain block owns no projection weights: option A where the shape changes, so skip can be flipped on.
    assert isinstance(make_shortcut("B", 16, 32, 2, skip=False), PadShortcut)
    assert make_shortcut("C", 16, 16, 1, skip=False) is None
    with pytest.raises(ValueError, match="shortcut must be one of"):
        make_shortcut("D", 16, 16, 1)


def test_projection_params():
    assert sum(p.numel() for p in projection(64, 128, 2).parameters()) == 64 * 128 + 2 * 128


def _projection_params(in_chs: int, out_chs: int) -> int:
    return in_chs * out_chs + 2 * out_chs  # 1x1 conv without bias + BN weight and bias


def _cifar_blocks(depth: int, widths=(16, 32, 64)):
    """(in_chs, out_chs, stride) of every basic block of a CIFAR ResNet, from the paper's description."""
    n = (depth - 2) // 6
    blocks, in_chs = [], widths[0]
    for stage, width in enumerate(widths):
        for j in range(n):
            blocks.append((in_chs, width, 2 if stage > 0 and j == 0 else 1))
            in_chs = width
    return blocks


@pytest.mark.parametrize("depth", [20, 56])
def test_shortcut_option_parameter_counts(depth, helpers):
    counts = {}
    for option in ("A", "B", "C"):
        with torch.device("meta"):
            counts[option] = helpers.num_params(create_model(f"resnet{depth}", shortcut=option))
    blocks = _cifar_blocks(depth)
    reshaping = [(i, o) for i, o, s in blocks if s != 1 or i != o]
    assert len(reshaping) == 2
    assert counts["B"] - counts["A"] == sum(_projection_params(i, o) for i, o in reshaping)
    assert counts["C"] - counts["A"] == sum(_projection_params(i, o) for i, o, _ in blocks)
    if depth == 20:
        assert counts["B"] - counts["A"] == (16 * 32 + 64) + (32 * 64 + 128) == 2752


def test_option_a_resnet20_has_no_projection_at_all():
    model = create_model("resnet20")  # the paper's CIFAR nets use option A
    pads = [m for m in model.modules() if isinstance(m, PadShortcut)]
    assert len(pads) == 2
    assert not any(isinstance(m, nn.Conv2d) and m.kernel_size == (1, 1) for m in model.modules())


@pytest.mark.parametrize("option", ["A", "B", "C"])
def test_shortcut_options_run(option):
    model = create_model("resnet20", shortcut=option, num_classes=3).eval()
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 3)


def test_resnet18_minus_plain18_is_its_three_projections(helpers):
    """ResNet-18 (option B) has a projection where stages 2-4 begin; plain-18 owns none of them."""
    expected = sum(_projection_params(w, 2 * w) for w in (64, 128, 256))
    assert expected == 173_824
    with torch.device("meta"):
        res, res_a, plain = create_model("resnet18"), create_model("resnet18", shortcut="A"), create_model("plain18")
    assert helpers.num_params(res) - helpers.num_params(plain) == expected
    assert helpers.num_params(res_a) == helpers.num_params(plain)


def test_residual_is_exported_at_top_level():
    assert bridge.Residual is Residual
