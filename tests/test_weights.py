"""Weights in from timm/torchvision and out to them, weight files, refusals, and ViT resampling."""

from __future__ import annotations

from pathlib import Path

import pytest
import timm
import torch
from safetensors.torch import save_file

from bridge import create_model, export_weights, import_weights
from bridge.errors import BridgeError, ConfigError, CorruptFileError, MissingFileError
from bridge.models.twins import create_twin
from bridge.models.weights import WeightsMismatchError, load_file, read_state_dict

SLOW = {"resnet152", "vit_base_patch16_224", "vit_small_patch16_224", "alexnet"} | {
    f"vgg{d}{bn}" for d in (11, 13, 16, 19) for bn in ("", "_bn")
}

# name -> an input the model and its twin accept, as small as the architecture allows.
TWIN_INPUTS = {
    **{name: (2, 3, 64, 64) for name in ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152")},
    "vit_tiny_patch16_224": (2, 3, 224, 224),
    "vit_small_patch16_224": (1, 3, 224, 224),
    "vit_base_patch16_224": (1, 3, 224, 224),
    "alexnet": (2, 3, 63, 63),
    # VGG pools adaptively to 7x7, so 32x32 (the smallest five 2x2 pools allow) runs every layer.
    **{f"vgg{d}{bn}": (2, 3, 32, 32) for d in (11, 13, 16, 19) for bn in ("", "_bn")},
}


def _batch(x: torch.Tensor) -> torch.Tensor:
    """Another batch like ``x`` (at least 2 images: BatchNorm statistics need more than one value)."""
    return torch.randn(max(2, x.shape[0]), *x.shape[1:])


TWIN_CASES = [pytest.param(n, marks=[pytest.mark.slow] if n in SLOW else []) for n in TWIN_INPUTS]


@pytest.mark.parametrize("name", TWIN_CASES)
def test_import_from_twin(name, helpers):
    """timm/torchvision weights (every tensor random and distinct) give our model the twin's outputs."""
    x = torch.randn(TWIN_INPUTS[name])
    twin = helpers.randomize_(helpers.materialize(lambda: create_twin(name)), seed=1, calibrate=_batch(x)).eval()
    ours = helpers.materialize(lambda: create_model(name)).eval()  # NaN until loaded
    assert import_weights(ours, twin) is ours
    with torch.no_grad():
        expected, actual = twin(x), ours(x)
    assert expected.shape == (x.shape[0], 1000)
    helpers.assert_same_outputs(actual, expected)
    if x.shape[0] > 1:
        assert not torch.allclose(expected[0], expected[1]), "outputs do not depend on the input"


@pytest.mark.parametrize("name", TWIN_CASES)
def test_export_to_twin(name, helpers):
    """export_weights(ours) loads strictly into a fresh twin, which then computes what ours computes."""
    x = torch.randn(TWIN_INPUTS[name])
    ours = helpers.randomize_(helpers.materialize(lambda: create_model(name)), seed=2, calibrate=_batch(x)).eval()
    twin = helpers.materialize(lambda: create_twin(name)).eval()  # NaN until loaded
    exported = export_weights(ours)
    assert set(exported) == set(twin.state_dict())
    twin.load_state_dict(exported, strict=True)
    with torch.no_grad():
        expected, actual = ours(x), twin(x)
    helpers.assert_same_outputs(actual, expected)


# ---------------------------------------------------------------------------------------- weight sources


@pytest.fixture(scope="module")
def twin18(helpers):
    """A randomised timm resnet18, an input and its output, shared by the source tests below."""
    x = torch.randn(2, 3, 64, 64)
    twin = helpers.randomize_(create_twin("resnet18"), seed=3, calibrate=torch.randn_like(x)).eval()
    with torch.no_grad():
        y = twin(x)
    return twin, x, y


def _write_source(kind: str, twin: torch.nn.Module, tmp_path: Path):
    state = {k: v.clone() for k, v in twin.state_dict().items()}
    if kind == "module":
        return twin
    if kind == "state_dict":
        return state
    if kind == "safetensors":
        path = tmp_path / "resnet18.safetensors"
        save_file(state, str(path))
        return path
    if kind == "pth":
        path = tmp_path / "resnet18.pth"
        torch.save(state, path)
        return str(path)  # a str path works as well as a Path
    if kind == "lightning_ckpt":  # {"state_dict": ...} with DDP's "module." prefix, plus non-tensor entries
        path = tmp_path / "resnet18.ckpt"
        torch.save({"epoch": 3, "state_dict": {f"module.{k}": v for k, v in state.items()}}, path)
        return path
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["module", "state_dict", "safetensors", "pth", "lightning_ckpt"])
def test_import_sources(kind, twin18, tmp_path, helpers):
    twin, x, expected = twin18
    source = _write_source(kind, twin, tmp_path)
    ours = helpers.materialize(lambda: create_model("resnet18")).eval()
    import_weights(ours, source)
    with torch.no_grad():
        helpers.assert_same_outputs(ours(x), expected)


@pytest.mark.parametrize("names", ["bridge", "timm"])
def test_import_bridge_or_timm_names_without_a_twin(names, helpers):
    """The CIFAR ResNets exist only here: weights under our names or exported names both load."""
    source = helpers.randomize_(create_model("resnet20"), seed=6, calibrate=torch.randn(2, 3, 32, 32)).eval()
    state = source.state_dict() if names == "bridge" else export_weights(source)
    assert any(".branch." in k for k in state) == (names == "bridge")
    target = helpers.materialize(lambda: create_model("resnet20")).eval()
    import_weights(target, dict(state))
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        helpers.assert_same_outputs(target(x), source(x))


def _ran_code(marker: str) -> str:
    Path(marker).write_text("pickled code ran")
    return marker


class CodeOnLoad:
    """Unpickling this calls ``_ran_code``: the kind of object a malicious .pth file carries."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (_ran_code, (self.marker,))


@pytest.mark.parametrize("suffix", [".pth", ".bin"])
def test_pickled_object_is_refused(suffix, tmp_path):
    marker = tmp_path / "marker.txt"
    path = tmp_path / f"evil{suffix}"
    state = dict(create_model("resnet20").state_dict())
    state["payload"] = CodeOnLoad(marker)
    torch.save(state, path)
    model = create_model("resnet20")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match="refusing to load") as info:
        import_weights(model, path)
    assert not isinstance(info.value, WeightsMismatchError)
    assert str(path) in str(info.value) and "safetensors" in str(info.value)
    assert not marker.exists(), "loading ran code from the checkpoint"
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items()), "a refused load changed weights"


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.safetensors"):
        read_state_dict(tmp_path / "nope.safetensors")


# ------------------------------------------------------------------------ one reader for every weights file


def _tiny_state() -> dict[str, torch.Tensor]:
    return {"fc.weight": torch.randn(4, 3), "fc.bias": torch.randn(4)}


def _bad_file(kind: str, tmp_path: Path) -> Path:
    """A file (or folder) that is not a loadable weights file, one kind each."""
    state = _tiny_state()
    if kind == "missing":
        return tmp_path / "nope.pth"
    if kind == "folder":
        folder = tmp_path / "policy"
        folder.mkdir()
        save_file(state, str(folder / "model.safetensors"))
        return folder
    if kind == "empty":
        (tmp_path / "empty.ckpt").touch()
        return tmp_path / "empty.ckpt"
    if kind.startswith("truncated"):  # a download or save cut off: half a zip, a safetensors file without its
        whole = tmp_path / "whole"  # last bytes of data, one cut inside its header
        torch.save(state, whole) if kind == "truncated_pth" else save_file(state, str(whole))
        data = whole.read_bytes()
        cut = {"truncated_pth": len(data) // 2, "truncated_safetensors": len(data) - 8, "truncated_header": 12}[kind]
        path = tmp_path / ("cut.pth" if kind == "truncated_pth" else "cut.safetensors")
        path.write_bytes(data[:cut])
        return path
    if kind == "code":
        torch.save({**state, "payload": CodeOnLoad(tmp_path / "marker.txt")}, tmp_path / "evil.pth")
        return tmp_path / "evil.pth"
    if kind == "pickle_named_safetensors":
        torch.save(state, tmp_path / "model.safetensors")
        return tmp_path / "model.safetensors"
    if kind == "text":
        (tmp_path / "notes.pth").write_text("these are not weights\n")
        return tmp_path / "notes.pth"
    if kind == "other_zip":
        import numpy as np

        np.savez(tmp_path / "arrays.npz", a=np.zeros(3))
        return tmp_path / "arrays.npz"
    if kind == "not_a_dict":
        torch.save([torch.zeros(2)], tmp_path / "list.pt")
        return tmp_path / "list.pt"
    raise AssertionError(kind)


# kind -> (error class, words of the message that name the problem and the fix)
BAD_FILES = {
    "missing": (MissingFileError, ["does not exist", "check the path"]),
    "folder": (MissingFileError, ["is a folder", "model.safetensors", "pass the file itself"]),
    "empty": (CorruptFileError, ["empty", "save or fetch it again"]),
    "truncated_pth": (CorruptFileError, ["truncated", "save or fetch it again"]),
    "truncated_safetensors": (CorruptFileError, ["truncated", "save or fetch it again"]),
    "truncated_header": (CorruptFileError, ["truncated", "save or fetch it again"]),
    "code": (CorruptFileError, ["refusing to load", "run code", "_ran_code", "safetensors"]),
    "pickle_named_safetensors": (CorruptFileError, ["named .safetensors", "torch pickle", "save_file", ".pth"]),
    "text": (CorruptFileError, ["not a weights file", "torch.save"]),
    "other_zip": (CorruptFileError, ["not a torch checkpoint", "torch.save"]),
    "not_a_dict": (CorruptFileError, ["holds a list", "state_dict()"]),
}


@pytest.mark.parametrize("kind", BAD_FILES)
def test_bad_weights_file_names_the_fix(kind, tmp_path):
    path = _bad_file(kind, tmp_path)
    error, words = BAD_FILES[kind]
    for read in (load_file, read_state_dict, lambda p: import_weights(create_model("lenet5"), p)):
        with pytest.raises(error) as info:
            read(path)
        assert isinstance(info.value, BridgeError)
        message = str(info.value)
        assert str(path) in message
        assert all(word in message for word in words), message
    assert not (tmp_path / "marker.txt").exists(), "loading ran code from the file"


def test_load_file_returns_a_whole_lightning_checkpoint(tmp_path):
    state = _tiny_state()
    torch.save({"epoch": 3, "hyper_parameters": {"model": "lenet5"}, "state_dict": state}, tmp_path / "last.ckpt")
    checkpoint = load_file(tmp_path / "last.ckpt")
    assert checkpoint["epoch"] == 3 and checkpoint["hyper_parameters"] == {"model": "lenet5"}
    assert all(torch.equal(checkpoint["state_dict"][k], v) for k, v in state.items())
    assert read_state_dict(tmp_path / "last.ckpt").keys() == state.keys()


def test_format_is_read_from_the_content_not_the_name(tmp_path):
    state = _tiny_state()
    save_file(state, str(tmp_path / "weights.pth"))  # safetensors under a torch name: read as what it is
    torch.save(state, tmp_path / "weights.bin")
    torch.save(state, tmp_path / "legacy.pt", _use_new_zipfile_serialization=False)
    for name in ("weights.pth", "weights.bin", "legacy.pt"):
        loaded = load_file(tmp_path / name)
        assert all(torch.equal(loaded[k], v) for k, v in state.items())


def test_a_checkpoint_without_tensors_is_named(tmp_path):
    torch.save({"epoch": 3, "hyper_parameters": {}}, tmp_path / "meta.ckpt")
    with pytest.raises(CorruptFileError, match="holds no tensors"):
        read_state_dict(tmp_path / "meta.ckpt")


def test_weights_mismatch_is_a_config_error():
    assert issubclass(WeightsMismatchError, ConfigError) and issubclass(WeightsMismatchError, ValueError)


def test_timm_adapter_weights_round_trip(helpers):
    """A ``timm:`` model exports under timm's own names and imports a plain timm state dict."""
    ours = helpers.randomize_(create_model("timm:test_resnet"), seed=7, calibrate=torch.randn(2, 3, 32, 32)).eval()
    twin = timm.create_model("test_resnet").eval()
    twin.load_state_dict(export_weights(ours), strict=True)
    again = import_weights(create_model("timm:test_resnet").eval(), twin.state_dict())
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        helpers.assert_same_outputs(twin(x), ours(x))
        helpers.assert_same_outputs(again(x), ours(x))


def test_resnet18_weights_into_resnet34_list_missing_keys():
    with torch.device("meta"):  # the check runs before any tensor is copied
        small, big = create_twin("resnet18"), create_model("resnet34")
        ours_small = create_model("resnet18")
    expected_missing = sorted(set(big.state_dict()) - set(ours_small.state_dict()))
    assert expected_missing and all(
        k.startswith(("layer1.2.", "layer2.2.", "layer2.3.", "layer3.", "layer4.2.")) for k in expected_missing
    )
    with pytest.raises(WeightsMismatchError) as info:
        import_weights(big, small)
    message = str(info.value)
    assert isinstance(info.value, ValueError)
    assert f"missing ({len(expected_missing)})" in message
    assert expected_missing[0] in message  # listed by name (the first dozen, sorted)
    assert "unexpected" not in message and "mis-shaped" not in message


def test_misshaped_head_is_listed_and_drop_head_loads_the_rest(twin18, helpers):
    twin, x, _ = twin18
    ours = helpers.randomize_(create_model("resnet18", num_classes=10), seed=4, calibrate=torch.randn_like(x)).eval()
    head_before = {k: v.clone() for k, v in ours.fc.state_dict().items()}
    body_before = ours.layer1[0].branch.conv1.weight.clone()
    with pytest.raises(WeightsMismatchError) as info:
        import_weights(ours, twin)
    message = str(info.value)
    assert "mis-shaped (2)" in message
    assert "fc.weight: checkpoint (1000, 512) vs model (10, 512)" in message
    assert "fc.bias: checkpoint (1000,) vs model (10,)" in message
    assert "missing" not in message
    assert torch.equal(ours.layer1[0].branch.conv1.weight, body_before), "a failed import changed weights"

    import_weights(ours, twin, drop_head=True)
    assert all(torch.equal(v, head_before[k]) for k, v in ours.fc.state_dict().items()), "the head must stay"
    with torch.no_grad():
        helpers.assert_same_outputs(ours.forward_features(x), twin.forward_features(x))
        helpers.assert_same_outputs(
            ours.forward_head(ours.forward_features(x), pre_logits=True),
            twin.forward_head(twin.forward_features(x), pre_logits=True),
        )
        assert ours(x).shape == (2, 10)


def test_drop_head_still_reports_body_mismatch(twin18):
    twin, _, _ = twin18
    with torch.device("meta"):
        ours = create_model("resnet34", num_classes=10)
    with pytest.raises(WeightsMismatchError, match="missing"):
        import_weights(ours, twin, drop_head=True)


# -------------------------------------------------------------------------------------- ViT resampling


@pytest.fixture(scope="module")
def vit_tiny_file(tmp_path_factory, helpers):
    """Random timm vit_tiny_patch16_224 weights (224x224, 16x16 patches) in a .safetensors file."""
    twin = helpers.randomize_(helpers.materialize(lambda: create_twin("vit_tiny_patch16_224")), seed=5)
    path = tmp_path_factory.mktemp("vit") / "vit_tiny_patch16_224.safetensors"
    save_file({k: v.contiguous() for k, v in twin.state_dict().items()}, str(path))
    return path


@pytest.mark.parametrize("patch_size", [16, 8])
def test_vit_resampled_like_timm(patch_size, vit_tiny_file):
    """224/16 weights into a 64x64 ViT (and 8x8 patches): the same resampling as timm's own loader."""
    kwargs = dict(img_size=64) if patch_size == 16 else dict(img_size=64, patch_size=patch_size)
    reference = timm.create_model(
        "vit_tiny_patch16_224", pretrained=True, pretrained_cfg_overlay=dict(file=str(vit_tiny_file)), **kwargs
    ).eval()
    saved = read_state_dict(vit_tiny_file)
    # timm really read our file (not its own init):
    assert torch.equal(reference.blocks[3].attn.qkv.weight, saved["blocks.3.attn.qkv.weight"])

    ours = create_model("vit_tiny_patch16_224", img_size=64, patch_size=patch_size).eval()
    import_weights(ours, vit_tiny_file)
    grid = 64 // patch_size
    assert ours.pos_embed.shape == (1, 1 + grid * grid, 192)
    assert ours.patch_embed.proj.weight.shape == (192, 3, patch_size, patch_size)
    torch.testing.assert_close(ours.pos_embed, reference.pos_embed, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(ours.patch_embed.proj.weight, reference.patch_embed.proj.weight, rtol=1e-5, atol=1e-6)

    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        expected, actual = reference(x), ours(x)
    assert torch.isfinite(expected).all()
    torch.testing.assert_close(actual, expected, rtol=1e-4, atol=1e-4)


def test_vit_resampled_like_timm_same_token_count_other_grid(vit_tiny_file):
    """img_size (448, 112): a 28x7 grid of 196 patches, as many as the 14x14 grid the weights were made for."""
    reference = timm.create_model(
        "vit_tiny_patch16_224",
        img_size=(448, 112),
        pretrained=True,
        pretrained_cfg_overlay=dict(file=str(vit_tiny_file)),
    ).eval()
    ours = import_weights(create_model("vit_tiny_patch16_224", img_size=(448, 112)).eval(), vit_tiny_file)
    assert ours.patch_embed.grid_size == (28, 7)
    x = torch.randn(1, 3, 448, 112)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), reference(x), rtol=1e-4, atol=1e-4)


def test_weights_load_from_an_image_classifier_checkpoint(tmp_path, helpers):
    """A training run's checkpoint keeps the network under ``model.``; import_weights finds it there."""
    source = helpers.randomize_(create_model("resnet20"))
    checkpoint = {"state_dict": {f"model.{k}": v for k, v in source.state_dict().items()}, "epoch": 3}
    torch.save(checkpoint, tmp_path / "last.ckpt")
    ours = import_weights(create_model("resnet20"), tmp_path / "last.ckpt")
    assert torch.equal(ours.layer3[2].branch.conv2.weight, source.layer3[2].branch.conv2.weight)
