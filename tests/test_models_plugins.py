"""A model family of one's own: one file outside the package that registers itself, found by every part of
the models API (create, list, info, sizing, weights in and out, FiLM sites), imported or named in BRIDGE_PLUGINS."""

from __future__ import annotations

import sys
import textwrap
import uuid

import pytest
import torch

from bridge import create_model, export_weights, import_weights, list_models
from bridge.errors import ConfigError, UnknownNameError
from bridge.models import create_model_for_input, model_info, registry

FAMILY = '''
"""TinyNet: a stem and one residual block; a whole encoder family in one file."""

from typing import ClassVar

from torch import Tensor, nn

from bridge.models import ZooModel, register_model
from bridge.nn import Residual


class TinyNet(ZooModel):
    head_name = "fc"
    # Its "twin" names the block's conv without the Residual's level.
    timm_key_rules: ClassVar[list[tuple[str, str]]] = [("block.branch.", "block.")]

    def __init__(self, num_classes: int = 3, in_chans: int = 1, width: int = 4) -> None:
        super().__init__()
        self.num_classes, self.in_chans, self.num_features = num_classes, in_chans, width
        self.stem = nn.Conv2d(in_chans, width, 3, padding=1)
        self.block = Residual(nn.Conv2d(width, width, 3, padding=1), post_act=nn.ReLU())
        self.fc = nn.Linear(width, num_classes)

    def forward_features(self, x: Tensor) -> Tensor:
        self.check_input(x)
        return self.block(self.stem(x))

    def forward_head(self, features: Tensor, pre_logits: bool = False) -> Tensor:
        x = features.mean(dim=(2, 3))
        return x if pre_logits else self.fc(x)

    def film_sites(self) -> list[str]:
        return ["block"]


@register_model(params=203, input_size=(1, 8, 8))
def MODEL_NAME(**kwargs) -> TinyNet:
    return TinyNet(**kwargs)
'''


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    """(module name, model name) of a fresh family file on sys.path, not yet imported; forgotten afterwards."""
    token = uuid.uuid4().hex[:8]
    module, name = f"my_encoders_{token}", f"tinynet_{token}"
    (tmp_path / f"{module}.py").write_text(textwrap.dedent(FAMILY).replace("MODEL_NAME", name))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(registry, "_MODELS", dict(registry._MODELS))  # the registration ends with the test
    monkeypatch.delenv("BRIDGE_PLUGINS", raising=False)
    yield module, name
    sys.modules.pop(module, None)


def test_an_imported_family_is_a_zoo_model(plugin):
    module, name = plugin
    __import__(module)
    assert list_models("tinynet*") == [name]
    info = model_info(name)
    assert (info.family, info.params, info.model_cls.__name__) == (module, 203, "TinyNet")
    model = create_model(name)
    assert sum(p.numel() for p in model.parameters()) == 203
    assert model.film_sites() == ["block"]
    assert create_model_for_input(name, (2, 8, 8), num_classes=5).fc.out_features == 5
    with pytest.raises(TypeError, match="width"):  # an unknown keyword lists what it takes, its class's too
        create_model(name, depth=3)


def test_an_imported_family_exports_and_imports_weights(plugin, helpers):
    module, name = plugin
    __import__(module)
    ours = helpers.randomize_(create_model(name)).eval()
    exported = export_weights(ours)
    assert set(exported) == {"stem.weight", "stem.bias", "block.weight", "block.bias", "fc.weight", "fc.bias"}
    for source in (exported, ours.state_dict()):  # the twin's names and our own both load
        again = import_weights(create_model(name).eval(), dict(source))
        x = torch.randn(2, 1, 8, 8)
        with torch.no_grad():
            torch.testing.assert_close(again(x), ours(x))


def test_a_family_named_in_bridge_plugins_is_found_without_an_import(plugin, monkeypatch):
    module, name = plugin
    monkeypatch.setenv("BRIDGE_PLUGINS", module)
    assert module not in sys.modules
    assert create_model(name).num_classes == 3
    assert module in sys.modules
    assert name in list_models()


def test_a_plugin_that_cannot_be_imported_is_named(monkeypatch):
    monkeypatch.setenv("BRIDGE_PLUGINS", "no_such_plugin_module")
    with pytest.raises(ConfigError, match="no_such_plugin_module"):
        create_model("no_such_model")


def test_an_unknown_name_says_how_to_register_one(monkeypatch):
    monkeypatch.delenv("BRIDGE_PLUGINS", raising=False)
    with pytest.raises(UnknownNameError, match="BRIDGE_PLUGINS"):
        create_model("tinynet_that_nobody_wrote")


def test_a_name_registered_twice_by_two_modules_is_refused(plugin, monkeypatch):
    module, name = plugin
    __import__(module)

    def builder(**kwargs):
        raise AssertionError("never built")

    builder.__name__ = name  # the same model name, from this test module
    with pytest.raises(ConfigError, match=f"{name}.*already registered by {module}"):
        registry.register_model(params=1, input_size=(1, 8, 8))(builder)
