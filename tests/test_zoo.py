"""The model zoo: parameter counts, the common interface, the ViT's attention kernel, and bad input."""

from __future__ import annotations

import functools
import re
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from bridge import EncoderOutput, create_model, list_models
from bridge.errors import BridgeError, ConfigError, UnknownNameError
from bridge.models import UnknownArgumentError, ZooModel, create_model_for_input, model_info

# The table from the issue, pinned here independently of the registry.
ISSUE_PARAMS = {
    "lenet5": 61_706,
    "alexnet": 61_100_840,
    "vgg11": 132_863_336,
    "vgg13": 133_047_848,
    "vgg16": 138_357_544,
    "vgg19": 143_667_240,
    "vgg11_bn": 132_868_840,
    "vgg13_bn": 133_053_736,
    "vgg16_bn": 138_365_992,
    "vgg19_bn": 143_678_248,
    "resnet18": 11_689_512,
    "resnet34": 21_797_672,
    "resnet50": 25_557_032,
    "resnet101": 44_549_160,
    "resnet152": 60_192_808,
    "plain18": 11_515_688,
    "plain34": 21_623_848,
    "resnet20": 269_722,
    "resnet32": 464_154,
    "resnet44": 658_586,
    "resnet56": 853_018,
    "resnet110": 1_727_962,
    "plain20": 269_722,
    "plain32": 464_154,
    "plain44": 658_586,
    "plain56": 853_018,
    "plain110": 1_727_962,
    "vit_tiny_patch16_224": 5_717_416,
    "vit_small_patch16_224": 22_050_664,
    "vit_base_patch16_224": 86_567_656,
}

# Per model: a small input it accepts (H = W), the width D of its features, and the number of tokens N
# that ``encode`` yields for that input (H*W of the last feature map, or the ViT's patches), worked out
# from the architectures by hand.
LENET = {"lenet5": (32, 16, 5 * 5)}  # 32 -conv5-> 28 -pool-> 14 -conv5-> 10 -pool-> 5
ALEXNET = {"alexnet": (63, 256, 1)}  # 63 -conv11/4-> 15 -pool-> 7 -pool-> 3 -pool-> 1
VGG = {name: (32, 512, 1) for name in ISSUE_PARAMS if name.startswith("vgg")}  # five 2x2 pools: 32 -> 1
RESNET_IMAGENET = {  # stride 32: 64 -> 2
    **{name: (64, 512, 2 * 2) for name in ("resnet18", "resnet34", "plain18", "plain34")},
    **{name: (64, 2048, 2 * 2) for name in ("resnet50", "resnet101", "resnet152")},
}
RESNET_CIFAR = {f"{kind}{d}": (32, 64, 8 * 8) for kind in ("resnet", "plain") for d in (20, 32, 44, 56, 110)}  # 32->8
VIT = {
    "vit_tiny_patch16_224": (224, 192, 14 * 14),
    "vit_small_patch16_224": (224, 384, 14 * 14),
    "vit_base_patch16_224": (224, 768, 14 * 14),
}
GEOMETRY = {**LENET, **ALEXNET, **VGG, **RESNET_IMAGENET, **RESNET_CIFAR, **VIT}

# Models whose real build or forward costs seconds (the VGGs' 25088x4096 layer, ResNet-50 and deeper, the
# ViTs above tiny at 224x224): their shape checks run on the meta device, which runs every layer's shape
# logic without allocating or computing anything. Their numerics are checked against timm/torchvision in
# test_weights.py.
ON_META = {"alexnet", *VGG, "resnet50", "resnet101", "resnet152", "vit_small_patch16_224", "vit_base_patch16_224"}


def device_for(name: str) -> str:
    return "meta" if name in ON_META else "cpu"


def build(name: str, device: str = "cpu", **kwargs) -> ZooModel:
    if device == "meta" and not kwargs:
        return _meta_model(name)
    with torch.device(device):
        return create_model(name, **kwargs).eval()


@functools.cache
def _meta_model(name: str) -> ZooModel:
    """Default-settings models on the meta device, built once per process (they hold no data to change)."""
    with torch.device("meta"):
        return create_model(name).eval()


def images(batch: int, chans: int, size: int, device: str = "cpu") -> torch.Tensor:
    return torch.randn(batch, chans, size, size, device=device)


# ------------------------------------------------------------------------------------------ the registry


def test_every_model_of_the_issue_is_registered():
    registered = list_models()
    missing = sorted(set(ISSUE_PARAMS) - set(registered))
    assert not missing, f"not registered: {missing}"
    assert len(registered) == len(set(registered))


def test_list_models_pattern():
    assert list_models("vgg*_bn") == ["vgg11_bn", "vgg13_bn", "vgg16_bn", "vgg19_bn"]
    assert set(list_models("plain*")) == {"plain18", "plain34", "plain20", "plain32", "plain44", "plain56", "plain110"}
    assert list_models("no_such_model*") == []


@pytest.mark.parametrize("name", list_models())
def test_param_count(name):
    """Parameters at default settings == model_info(name).params == the issue's table."""
    model = build(name, "meta")
    count = sum(p.numel() for p in model.parameters())
    assert count == model_info(name).params
    if name in ISSUE_PARAMS:
        assert count == ISSUE_PARAMS[name]


def test_info_matches_the_issue_table():
    assert {name: model_info(name).params for name in ISSUE_PARAMS} == ISSUE_PARAMS


def test_twins_are_named_after_timm_or_torchvision():
    for name in ISSUE_PARAMS:
        twin = model_info(name).twin
        if name.startswith(("alexnet", "vgg")):
            assert twin == f"torchvision/{name}"
        elif name.startswith("vit") or name in ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152"):
            assert twin == f"timm/{name}"
        else:  # the plain nets and the CIFAR ResNets exist nowhere else
            assert twin is None


# ------------------------------------------------------------------------------------- common interface


@pytest.mark.parametrize("name", list_models())
def test_registered_input_size_is_accepted(name):
    """model_info(name).input_size is what the default model is built for."""
    model = build(name, "meta")
    c, h, w = model_info(name).input_size
    assert c == model.in_chans
    assert model(torch.empty(2, c, h, w, device="meta")).shape == (2, model.num_classes)


@pytest.mark.parametrize("name", list(GEOMETRY))
def test_num_classes_and_in_chans(name):
    size = GEOMETRY[name][0]
    device = device_for(name)
    model = build(name, device, num_classes=7, in_chans=1)
    assert (model.num_classes, model.in_chans) == (7, 1)
    out = model(images(2, 1, size, device))
    assert out.shape == (2, 7)
    with pytest.raises(ValueError):  # and a 1-channel model refuses 3 channels
        model(images(2, 3, size, device))


@pytest.mark.parametrize("name", list(GEOMETRY))
def test_encode(name):
    size, dim, tokens = GEOMETRY[name]
    device = device_for(name)
    model = build(name, device)
    x = images(2, 3 if name != "lenet5" else 1, size, device)
    enc = model.encode(x)
    assert isinstance(enc, EncoderOutput)
    assert model.num_features == dim
    assert enc.tokens.shape == (2, tokens, dim)
    assert enc.pooled.shape == (2, dim)

    features = model.forward_features(x)
    if name in VIT:
        assert tokens == model.patch_embed.num_patches
        assert features.shape == (2, 1 + tokens, dim)  # the class token first
    else:
        b, c, h, w = features.shape
        assert (c, h * w) == (dim, tokens)  # N = H*W of the last feature map
    if device == "meta":
        return
    with torch.no_grad():
        if name in VIT:
            torch.testing.assert_close(enc.tokens, features[:, 1:])
            torch.testing.assert_close(enc.pooled, features[:, 0])  # the class token
        else:
            torch.testing.assert_close(enc.tokens, features.flatten(2).transpose(1, 2))
            torch.testing.assert_close(enc.pooled, features.mean(dim=(2, 3)))  # global average pool
        if name in RESNET_IMAGENET or name in RESNET_CIFAR or name in VIT:
            # What the classifier reads is the pooled vector.
            torch.testing.assert_close(model.forward_head(features, pre_logits=True), enc.pooled)


FORWARD_SPLIT = [n for n in GEOMETRY if device_for(n) == "cpu"] + ["alexnet", "vgg11_bn"]


@pytest.mark.parametrize("name", FORWARD_SPLIT)
def test_forward_is_head_of_features(name, helpers):
    size = GEOMETRY[name][0]
    if name in ON_META:  # skip the slow default init of ~100M weights: any random values do here
        model = helpers.randomize_(helpers.materialize(lambda: create_model(name, num_classes=5))).eval()
    else:
        model = build(name, num_classes=5)  # eval: dropout is off
    x = images(2, model.in_chans, size)
    with torch.no_grad():
        out = model(x)
        torch.testing.assert_close(model.forward_head(model.forward_features(x)), out)
    assert out.shape == (2, 5) and torch.isfinite(out).all()
    assert not torch.allclose(out[0], out[1]), "the output does not depend on the input"


@pytest.mark.parametrize("name", ["lenet5", "resnet20", "vit_tiny_patch16_224"])
def test_reset_classifier(name):
    size = GEOMETRY[name][0]
    model = build(name)
    body = {k: v.clone() for k, v in model.state_dict().items()}
    model.reset_classifier(3)
    assert model.num_classes == 3
    assert model(images(2, model.in_chans, size)).shape == (2, 3)
    changed = {k for k, v in model.state_dict().items() if k not in body or v.shape != body[k].shape}
    assert changed == {f"{model.head_name}.weight", f"{model.head_name}.bias"}


def test_vit_small_config():
    """A ViT for 64x64 images and 8x8 patches: 64 tokens, fewer position and patch parameters."""
    model = build("vit_tiny_patch16_224", img_size=64, patch_size=8)
    dim = 192
    expected = 5_717_416 - dim * 3 * (16 * 16 - 8 * 8) - dim * ((1 + 14 * 14) - (1 + 8 * 8))
    assert sum(p.numel() for p in model.parameters()) == expected
    assert model.pos_embed.shape == (1, 1 + 64, dim)
    x = images(2, 3, 64)
    assert model(x).shape == (2, 1000)
    enc = model.encode(x)
    assert enc.tokens.shape == (2, 64, dim) and enc.pooled.shape == (2, dim)
    with pytest.raises(ValueError, match=r"\(B, 3, 64, 64\)"):
        model(images(1, 3, 224))


@pytest.mark.parametrize("depth", [12, 3])
def test_vit_attention_uses_sdpa_once_per_block(depth, monkeypatch):
    calls = []
    sdpa = F.scaled_dot_product_attention

    def counting_sdpa(q, k, v, *args, **kwargs):
        calls.append(q.shape)
        return sdpa(q, k, v, *args, **kwargs)

    model = build("vit_tiny_patch16_224", img_size=32, depth=depth)
    x = images(2, 3, 32)
    with torch.no_grad():
        reference = model(x)
        monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", counting_sdpa)
        out = model(x)
    assert len(calls) == depth
    # (B, heads, N, head_dim): 3 heads of 64 over the class token and 2x2 patches.
    assert set(calls) == {torch.Size([2, 3, 1 + 4, 64])}
    torch.testing.assert_close(out, reference)


# ------------------------------------------------------------------------------------------- bad input


def test_unknown_model_suggests_close_names():
    with pytest.raises(KeyError, match="resnet50") as info:
        create_model("resnet5")
    assert "'resnet5'" in str(info.value)
    with pytest.raises(KeyError, match="vit_tiny_patch16_224"):
        create_model("vit_tiny_patch16")
    with pytest.raises(KeyError, match="no_such_net"):
        model_info("no_such_net")


@pytest.mark.parametrize("name", list(GEOMETRY))
def test_wrong_channel_count(name):
    size = GEOMETRY[name][0]
    model = build(name, "meta")
    wrong = 3 if model.in_chans == 1 else 1
    x = images(2, wrong, size, "meta")
    with pytest.raises(ValueError) as info:
        model(x)
    message = str(info.value)
    assert f"{model.in_chans} input channels" in message
    assert str(tuple(x.shape)) in message
    with pytest.raises(ValueError):
        model.encode(x)


@pytest.mark.parametrize(
    "name, given, expected",
    [
        ("lenet5", (2, 1, 28, 28), "(B, 1, 32, 32)"),
        ("vit_tiny_patch16_224", (1, 3, 64, 64), "(B, 3, 224, 224)"),
        ("vit_base_patch16_224", (1, 3, 224, 192), "(B, 3, 224, 224)"),
        ("alexnet", (1, 3, 32, 32), "63x63"),
        ("vgg16", (1, 3, 16, 16), "32x32"),
    ],
)
def test_wrong_image_size(name, given, expected):
    model = build(name, "meta")
    with pytest.raises(ValueError) as info:
        model(torch.empty(given, device="meta"))
    message = str(info.value)
    assert expected in message
    assert str(given) in message


def test_alexnet_accepts_its_minimum_size():
    model = build("alexnet", "meta")
    assert model(images(1, 3, 63, "meta")).shape == (1, 1000)


def test_not_an_image_batch():
    model = build("resnet20")
    with pytest.raises(ValueError, match=r"\(B, C, H, W\), got \(3, 32, 32\)"):
        model(torch.randn(3, 32, 32))


@pytest.mark.parametrize("name", list_models())
def test_unknown_kwarg_is_named(name):
    with pytest.raises(TypeError) as info:
        create_model(name, bogus_option=3)
    message = str(info.value)
    assert "bogus_option" in message
    assert re.search(r"\bnum_classes\b", message), "the error should list what the model does take"


@pytest.mark.parametrize(
    "name, kwargs, named",
    [
        ("vit_tiny_patch16_224", dict(patch_size=0), "patch_size"),
        ("vit_tiny_patch16_224", dict(img_size=0), "img_size"),
        ("vit_tiny_patch16_224", dict(img_size=-32), "img_size"),
        ("vit_tiny_patch16_224", dict(img_size=(64, 0)), "img_size"),
        ("vit_tiny_patch16_224", dict(depth=-1), "depth"),
        ("vit_tiny_patch16_224", dict(num_heads=5), "num_heads"),
        ("vit_tiny_patch16_224", dict(img_size=60, patch_size=16), "multiple of patch_size"),
        ("resnet18", dict(widths=(64, -128, 256, 512)), "widths"),
        ("resnet18", dict(layers=(2, -1, 2, 2)), "layers"),
        ("resnet18", dict(layers=(2, 2)), "same length"),
        ("resnet20", dict(in_chans=0), "in_chans"),
        ("resnet20", dict(num_classes=-3), "num_classes"),
        ("resnet20", dict(block="wide"), "block"),
        ("lenet5", dict(in_chans=2.5), "in_chans"),
        ("alexnet", dict(num_classes=-1), "num_classes"),
        ("vgg11", dict(in_chans=0), "in_chans"),
    ],
)
def test_bad_settings_are_named_before_torch_fails(name, kwargs, named):
    with torch.device("meta"), pytest.raises(ConfigError, match=re.escape(named)):
        create_model(name, **kwargs)


def test_unknown_kwarg_is_a_bridge_error_and_a_type_error():
    with pytest.raises(UnknownArgumentError) as info:
        create_model("resnet20", patch_size=4)
    assert isinstance(info.value, TypeError) and isinstance(info.value, BridgeError)
    assert isinstance(model_info("resnet20").model_cls, type)  # read from the builder's return annotation


def test_unknown_name_is_a_bridge_error():
    with pytest.raises(UnknownNameError, match="resnet50"):
        create_model("resnet5")


# --------------------------------------------------------------------------------- family hooks


@pytest.mark.parametrize(
    "name, kwargs, sites",
    [
        ("resnet20", {}, ["layer1", "layer2", "layer3"]),
        ("resnet18", {}, ["layer1", "layer2", "layer3", "layer4"]),
        ("vit_tiny_patch16_224", dict(img_size=32, depth=3), ["blocks.0", "blocks.1", "blocks.2"]),
        ("babyai_film_cnn", {}, ["blocks.0.branch.conv2", "blocks.1.branch.conv2"]),
        ("lenet5", {}, []),
        ("alexnet", {}, []),
        ("vgg11", {}, []),
        ("timm:test_resnet", dict(num_classes=0), ["model.act1"] + [f"model.layer{i}" for i in range(1, 5)]),
        ("timm:test_vit", dict(num_classes=0), [f"model.blocks.{i}" for i in range(6)]),
    ],
)
def test_film_sites(name, kwargs, sites):
    with torch.device("meta"):
        model = create_model(name, **kwargs)
    assert model.film_sites() == sites
    for site in sites:  # each names a real submodule, where a forward hook can act
        model.get_submodule(site)


@pytest.mark.parametrize(
    "name, input_size, expected",
    [
        ("vit_tiny_patch16_224", (3, 64, 64), dict(grid=(8, 8), in_chans=3)),
        ("vit_tiny_patch16_224", (1, 32, 32), dict(grid=(8, 8), in_chans=1)),
        ("resnet20", (1, 28, 28), dict(in_chans=1)),
    ],
)
def test_create_model_for_input(name, input_size, expected):
    with torch.device("meta"):
        model = create_model_for_input(name, input_size, num_classes=4)
    assert (model.in_chans, model.num_classes) == (expected["in_chans"], 4)
    if "grid" in expected:
        assert model.patch_embed.grid_size == expected["grid"]  # 8x8 tokens whatever the image size
    assert model(torch.empty(2, *input_size, device="meta")).shape == (2, 4)


def test_create_model_for_input_kwargs_win():
    with torch.device("meta"):
        model = create_model_for_input("vit_tiny_patch16_224", (3, 64, 64), num_classes=4, patch_size=16)
    assert model.patch_embed.grid_size == (4, 4)


def test_import_bridge_loads_no_torch():
    """The package face is light: torch comes with the first model, not with ``import bridge``."""
    code = "import bridge, sys; assert 'torch' not in sys.modules; bridge.create_model; assert 'torch' in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
