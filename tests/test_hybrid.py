"""The hybrid: a ResNet's stages as the ViT's patch embedding, with a ResNet classifier's weights in its first half."""

from __future__ import annotations

import pytest
import torch

from bridge import create_model
from bridge.errors import ConfigError
from bridge.models import import_weights
from bridge.nn import Residual
from bridge.vla.policy.encoder import classifier_checkpoint_weights, serves_as_backbone


def test_the_resnet_grid_is_the_token_grid():
    model = create_model("resnet_vit", img_size=64).eval()
    out = model.encode(torch.randn(2, 3, 64, 64))
    assert out.tokens.shape == (2, 64, 48) and out.pooled.shape == (2, 48)  # 64 / 8 = 8x8 cells, width 48
    cifar = create_model("resnet_vit", img_size=32, resnet={"stem": "cifar", "layers": [1, 1, 1], "widths": [8, 8, 8]})
    assert cifar.encode(torch.randn(1, 3, 32, 32)).tokens.shape == (1, 64, 48)  # stride 4: 8x8 again
    # Both halves skip by the same module: the ResNet's blocks and the Transformer's.
    residuals = [m for m in model.modules() if isinstance(m, Residual)]
    assert len(residuals) == 6 + 2 * 4


def test_a_resnet_classifiers_weights_fill_the_convolutional_half_only():
    resnet = create_model("resnet20", stem="imagenet", layers=[3, 3], widths=[16, 32], num_classes=12)
    hybrid = create_model("resnet_vit")
    before = {k: v.clone() for k, v in hybrid.state_dict().items()}
    import_weights(hybrid, resnet.state_dict(), drop_head=True)  # as the policy reads a classifier checkpoint
    after = hybrid.state_dict()
    for key, value in resnet.state_dict().items():
        if not key.startswith("fc."):
            torch.testing.assert_close(after[f"patch_embed.backbone.{key}"], value)
    untouched = [k for k in before if not k.startswith("patch_embed.backbone.")]
    assert untouched and all(torch.equal(before[k], after[k]) for k in untouched)


def test_only_a_resnet_serves_as_its_backbone(tmp_path):
    assert serves_as_backbone("resnet20", "resnet_vit") and serves_as_backbone("resnet18", "resnet_vit")
    assert not serves_as_backbone("vit_tiny_patch16_224", "resnet_vit")
    assert not serves_as_backbone("resnet20", "vit_tiny_patch16_224")
    path = tmp_path / "vit.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": {"model": "vit_tiny_patch16_224"}}, path)
    with pytest.raises(ConfigError, match="holds a vit_tiny_patch16_224 classifier but the policy's encoder is"):
        classifier_checkpoint_weights(str(path), "resnet_vit")
