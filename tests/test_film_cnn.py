"""BabyAI 1.1's FiLM-CNN: a 56x56 view becomes its 7x7 grid of cells, pooled by max, FiLM inside its blocks."""

from __future__ import annotations

import torch

from bridge import create_model
from bridge.nn import Residual


def test_a_view_becomes_its_grid_of_cells_and_the_pool_is_a_max():
    torch.manual_seed(0)
    model = create_model("babyai_film_cnn", num_classes=5).eval()
    x = torch.rand(2, 3, 56, 56)
    enc = model.encode(x)
    assert enc.tokens.shape == (2, 49, 128) and enc.pooled.shape == (2, 128)
    torch.testing.assert_close(enc.pooled, enc.tokens.amax(dim=1))
    torch.testing.assert_close(model.forward_head(model.forward_features(x), pre_logits=True), enc.pooled)
    assert model(x).shape == (2, 5)
    # The stem reads one 8x8 tile per cell: changing one tile changes that cell's token and no other before the 3x3s.
    y = x.clone()
    y[:, :, :8, :8] = 0
    stem = model.stem(x) - model.stem(y)
    assert stem[:, :, 0, 0].abs().sum() > 0
    assert stem[:, :, 1:, :].abs().sum() == 0 and stem[:, :, :, 1:].abs().sum() == 0


def test_its_blocks_are_residual_and_film_sites_are_inside_them():
    model = create_model("babyai_film_cnn", depth=3, width=16)
    assert len(model.blocks) == 3 and all(isinstance(b, Residual) for b in model.blocks)
    assert model.film_sites() == [f"blocks.{i}.branch.conv2" for i in range(3)]
    assert model.encode(torch.rand(1, 3, 56, 56)).tokens.shape == (1, 49, 16)
