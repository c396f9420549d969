"""Weight tiles, mosaics, colour limits, seed aggregation and figure files."""

from __future__ import annotations

import base64
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pytest

from robustcompress.reporting.figures import (
    Line,
    Panel,
    aggregate_series,
    grid_columns,
    line_figure,
    mosaic,
    save_figure,
    symmetric_limit,
    tile_grid,
    weight_figure,
)


@pytest.mark.parametrize(("n", "columns"), [(20, 5), (32, 8), (16, 4), (7, 3), (1, 1), (10, 5)])
def test_grid_columns(n: int, columns: int) -> None:
    assert grid_columns(n) == columns


def test_fcnn_rows_become_28x28_tiles() -> None:
    w = np.arange(20 * 784, dtype=float).reshape(20, 784)
    grid = tile_grid(w, (1, 28, 28))
    assert grid.shape == (4, 5, 28, 28)
    np.testing.assert_array_equal(grid[0, 1], w[1].reshape(28, 28))
    np.testing.assert_array_equal(grid[3, 4], w[19].reshape(28, 28))


def test_first_conv_filters_become_3x3_tiles() -> None:
    k = np.random.default_rng(0).normal(size=(32, 1, 3, 3))
    grid = tile_grid(k)
    assert grid.shape == (4, 8, 3, 3)
    np.testing.assert_array_equal(grid[1, 2], k[10, 0])


def test_multichannel_conv_is_output_by_input_grid() -> None:
    k = np.random.default_rng(0).normal(size=(4, 3, 3, 3))
    grid = tile_grid(k)
    assert grid.shape == (4, 3, 3, 3)
    np.testing.assert_array_equal(grid[2, 1], k[2, 1])


def test_other_matrices_are_one_tile_and_incomplete_grids_are_nan() -> None:
    w = np.ones((10, 20))
    assert tile_grid(w, (1, 28, 28)).shape == (1, 1, 10, 20)
    grid = tile_grid(np.ones((7, 1, 2, 2)))  # 7 tiles in a 3-column grid: 2 empty cells
    assert grid.shape == (3, 3, 2, 2)
    assert np.isnan(grid[2, 1]).all() and np.isnan(grid[2, 2]).all()
    assert np.isfinite(grid[2, 0]).all()
    with pytest.raises(ValueError, match="2-D or 4-D"):
        tile_grid(np.ones(5))


def test_mosaic_places_tiles_with_nan_gaps() -> None:
    grid = np.arange(2 * 3 * 2 * 2, dtype=float).reshape(2, 3, 2, 2)
    image = mosaic(grid, gap=1)
    assert image.shape == (2 * 2 + 1, 3 * 2 + 2)
    np.testing.assert_array_equal(image[3:5, 3:5], grid[1, 1])
    assert np.isnan(image[2]).all()  # the gap row
    assert np.isnan(image[:, 2]).all() and np.isnan(image[:, 5]).all()


def test_symmetric_limit() -> None:
    arrays = [np.array([0.1, -0.3]), np.array([np.nan, 0.2])]
    assert symmetric_limit(arrays, percentile=100) == pytest.approx(0.3)
    assert symmetric_limit(arrays, percentile=50) == pytest.approx(0.2)  # median of |w|
    # the default saturates the top 0.5%: one outlier among 1000 weights does not set it
    weights = np.concatenate([np.linspace(-1, 1, 999), [50.0]])
    assert symmetric_limit([weights]) == pytest.approx(np.percentile(np.abs(weights), 99.5))
    assert symmetric_limit([weights]) < 1.0
    assert symmetric_limit([np.zeros(3)]) == 1.0
    assert symmetric_limit([]) == 1.0


def test_aggregate_series_mean_min_max_on_union_of_x() -> None:
    a = (np.array([0.0, 1.0, 2.0]), np.array([1.0, 2.0, 3.0]))
    b = (np.array([0.0, 2.0]), np.array([3.0, np.nan]))
    x, mean, low, high = aggregate_series([a, b])
    np.testing.assert_array_equal(x, [0.0, 1.0, 2.0])
    np.testing.assert_allclose(mean, [2.0, 2.0, 3.0])
    np.testing.assert_allclose(low, [1.0, 2.0, 3.0])
    np.testing.assert_allclose(high, [3.0, 2.0, 3.0])


def test_save_figure_writes_png_svg_and_data_uri(tmp_path: Path) -> None:
    panel = Panel("p", "y", [Line("a", np.arange(3.0), np.arange(3.0), color="#000000")])
    saved = save_figure(line_figure([panel], "title"), tmp_path / "figs", "k", "T", "cap")
    assert saved.png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert saved.svg.read_text().lstrip().startswith("<?xml")
    prefix = "data:image/png;base64,"
    assert saved.data_uri.startswith(prefix)
    assert base64.b64decode(saved.data_uri[len(prefix) :]) == saved.png.read_bytes()


def test_weight_figure_uses_the_given_symmetric_scale() -> None:
    grid = tile_grid(np.random.default_rng(0).normal(size=(8, 1, 3, 3)))
    fig = weight_figure([("a", grid), ("b", grid)], 2.5, "t")
    images = [im for ax in fig.axes for im in ax.get_images()]
    assert len(images) == 2
    assert all(im.get_clim() == (-2.5, 2.5) for im in images)
    plt.close(fig)
