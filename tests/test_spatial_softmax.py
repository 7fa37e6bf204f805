import pytest
import torch

from bridge.nn import SpatialSoftmax


@pytest.mark.parametrize("cell", [(0, 0), (2, 3), (1, 2)])
def test_a_map_that_fires_at_one_cell_puts_its_keypoint_there(cell):
    grid = (3, 4)
    layer = SpatialSoftmax(grid, channels=1, num_keypoints=1)
    with torch.no_grad():
        layer.maps.weight.fill_(50.0)  # a sharp softmax: almost all weight on the firing cell
        layer.maps.bias.zero_()
    tokens = torch.zeros(1, grid[0] * grid[1], 1)
    row, col = cell
    tokens[0, row * grid[1] + col, 0] = 1.0
    x, y = layer(tokens)[0, 0]
    assert x.item() == pytest.approx(-1 + 2 * col / (grid[1] - 1), abs=1e-6)  # x runs along the columns
    assert y.item() == pytest.approx(-1 + 2 * row / (grid[0] - 1), abs=1e-6)


def test_a_flat_map_points_at_the_centre_and_keypoints_stay_in_the_frame():
    layer = SpatialSoftmax((8, 8), channels=16, num_keypoints=5)
    assert torch.allclose(layer(torch.zeros(2, 64, 16)), torch.zeros(2, 5, 2), atol=1e-6)
    out = layer(torch.randn(2, 64, 16) * 10)
    assert out.shape == (2, 5, 2) and out.abs().max() <= 1
