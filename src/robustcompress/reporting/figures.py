"""Figures of a report: weight matrices as image tiles, and metrics over training.

Everything is drawn with Matplotlib's Agg backend (no display needed) and saved
twice, as PNG (embedded in the HTML as a base64 data URI) and as SVG beside it.

Weight tiles follow Langenberg et al. 2019, Figures 1 and 6–10: each row of the
FCNN's ``W_1 ∈ R^{20×784}`` is one 28×28 image (the input pixels it weighs), each
filter of a convolution a ``k_h × k_w`` tile. All panels of one figure, and all
figures of one weight matrix, share one diverging colour scale symmetric around 0
(``RdBu_r``: blue negative, white 0, red positive), so "sparser" and "more
structured" can be read across methods.

Metric figures draw, per method, the mean over seeds with a band from the smallest
to the largest seed (with two or three seeds a min–max band shows every seed,
where ±std would suggest a distribution).
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.artist import Artist
from matplotlib.figure import Figure

WEIGHT_CMAP = "RdBu_r"
"""Diverging colour map of weight tiles: blue < 0 < red, white at 0."""

GAP_COLOR = "#d9d9d9"
"""Colour of the gaps between tiles (NaN cells of a mosaic)."""

PNG_DPI = 110

MIN_WIDTH = 7.0
"""Smallest figure width in inches, so one-panel figures keep room for their titles."""

METHOD_COLORS = (
    "#1b1b1b",
    "#d62728",
    "#1f77b4",
    "#2ca02c",
    "#9467bd",
    "#ff7f0e",
    "#8c564b",
    "#e377c2",
    "#17becf",
    "#bcbd22",
    "#7f7f7f",
)
"""Line colours by method position (the first method, natural training, in black)."""


# ---------------------------------------------------------------- tiles (pure)


def grid_columns(n: int) -> int:
    """Columns of a near-square grid of ``n`` tiles: the smallest divisor ≥ √n if it is
    at most 2√n (20 → 5, 32 → 8), else ⌈√n⌉."""
    if n <= 0:
        return 1
    root = math.sqrt(n)
    for c in range(math.ceil(root), n + 1):
        if n % c == 0:
            return c if c <= 2 * root else math.ceil(root)
    return math.ceil(root)


def tile_grid(weight: np.ndarray, input_shape: Sequence[int] | None = None) -> np.ndarray:
    """Arrange a weight tensor as a grid of image tiles, shape ``(rows, cols, h, w)``.

    * linear ``W ∈ R^{out×in}`` with ``in = C·H·W`` of ``input_shape = (C, H, W)``: one
      ``(C·H) × W`` tile per row of W (Langenberg Figure 1: 20 tiles of 28×28);
    * other linear weights: the whole matrix as one tile;
    * convolution ``K ∈ R^{c_out×c_in×k_h×k_w}`` with ``c_in = 1``: one tile per filter
      (Figure 6: 32 tiles of 3×3); with ``c_in > 1``: ``c_out`` rows × ``c_in`` columns of
      ``k_h × k_w`` tiles (Figure 7).

    Unused cells of an incomplete grid are NaN.
    """
    w = np.asarray(weight, dtype=float)
    if w.ndim == 4:
        if w.shape[1] > 1:
            return w
        tiles = w[:, 0]
    elif w.ndim == 2:
        out, features = w.shape
        if input_shape is not None and len(input_shape) == 3 and math.prod(input_shape) == features:
            c, h, wd = input_shape
            tiles = w.reshape(out, c * h, wd)
        else:
            return w[None, None]
    else:
        raise ValueError(f"weight tiles need a 2-D or 4-D weight, got shape {w.shape}")
    n = tiles.shape[0]
    cols = grid_columns(n)
    rows = math.ceil(n / cols)
    grid = np.full((rows * cols, *tiles.shape[1:]), np.nan)
    grid[:n] = tiles
    return grid.reshape(rows, cols, *tiles.shape[1:])


def mosaic(grid: np.ndarray, gap: int = 1) -> np.ndarray:
    """One 2-D image from a ``(rows, cols, h, w)`` grid, tiles separated by ``gap`` NaN cells."""
    rows, cols, h, w = grid.shape
    out = np.full((rows * h + (rows - 1) * gap, cols * w + (cols - 1) * gap), np.nan)
    for i in range(rows):
        for j in range(cols):
            out[i * (h + gap) : i * (h + gap) + h, j * (w + gap) : j * (w + gap) + w] = grid[i, j]
    return out


WEIGHT_PERCENTILE = 99.5
"""Percentile of |w| (pooled over every method) where the weight colour scale saturates.

A few large weights (ℓ1 training concentrates mass in few entries) would otherwise
wash every tile out to white; the colour bar's arrows mark the saturated ends."""


def symmetric_limit(arrays: Sequence[np.ndarray], percentile: float = WEIGHT_PERCENTILE) -> float:
    """The ``percentile``-th percentile of ``|w|`` pooled over the finite entries of
    ``arrays``: the shared colour range ±limit (``percentile = 100`` gives ``max |w|``).

    1.0 when there is nothing finite or everything is 0 (a colour scale needs a width).
    """
    finite = [np.abs(a[np.isfinite(a)]).ravel() for a in arrays]
    pooled = np.concatenate(finite) if finite else np.array([])
    limit = float(np.percentile(pooled, percentile)) if pooled.size else 0.0
    return limit if limit > 0 else 1.0


# ------------------------------------------------------------ series (pure)


def aggregate_series(
    series: Sequence[tuple[np.ndarray, np.ndarray]],
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Mean, minimum and maximum over seeds of curves tracked at (mostly) the same x.

    Returns ``(x, mean, low, high)`` on the union of the x values; a seed missing an x
    (or NaN there) is left out at that x. x values equal up to 1e-9 are merged.
    """
    xs = np.unique(np.round(np.concatenate([s[0] for s in series]), 9)) if series else np.array([])
    table = np.full((len(series), len(xs)), np.nan)
    for i, (x, y) in enumerate(series):
        index = np.searchsorted(xs, np.round(x, 9))
        table[i, index] = y
    with np.errstate(all="ignore"):
        finite = np.isfinite(table)
        count = finite.sum(axis=0)
        total = np.where(finite, table, 0.0).sum(axis=0)
        mean = np.where(count > 0, total / np.maximum(count, 1), np.nan)
        low = np.where(count > 0, np.nanmin(np.where(finite, table, np.inf), axis=0), np.nan)
        high = np.where(count > 0, np.nanmax(np.where(finite, table, -np.inf), axis=0), np.nan)
    return xs, mean, low, high


# ----------------------------------------------------------------- drawing


@dataclass
class Line:
    """One curve: a method's mean over seeds with an optional min–max band."""

    label: str
    x: np.ndarray
    y: np.ndarray
    low: np.ndarray | None = None
    high: np.ndarray | None = None
    color: str | None = None
    linestyle: str = "-"
    legend: bool = True


@dataclass
class Panel:
    """One subplot of a metric figure."""

    title: str
    ylabel: str
    lines: list[Line] = field(default_factory=list)
    xlabel: str = "epoch"
    ylim: tuple[float, float] | None = None


def line_figure(panels: Sequence[Panel], title: str, columns: int | None = None) -> Figure:
    """A grid of line plots with one shared legend (methods) below the panels."""
    n = max(len(panels), 1)
    columns = columns or min(n, 4)
    rows = math.ceil(n / columns)
    width = max(3.4 * columns, MIN_WIDTH)
    fig, axes = plt.subplots(rows, columns, figsize=(width, 2.7 * rows + 0.9), squeeze=False)
    handles: dict[str, Artist] = {}
    for ax, panel in zip(axes.flat, panels, strict=False):
        for line in panel.lines:
            (handle,) = ax.plot(
                line.x, line.y, color=line.color, linestyle=line.linestyle, lw=1.5, label=line.label
            )
            if line.low is not None and line.high is not None and len(line.x) > 0:
                ax.fill_between(line.x, line.low, line.high, color=handle.get_color(), alpha=0.15)
            if line.legend:
                handles.setdefault(line.label, handle)
        ax.set_title(panel.title, fontsize=10)
        ax.set_xlabel(panel.xlabel, fontsize=9)
        ax.set_ylabel(panel.ylabel, fontsize=9)
        ax.tick_params(labelsize=8)
        ax.ticklabel_format(axis="y", useOffset=False)
        ax.grid(alpha=0.3)
        if panel.ylim is not None:
            ax.set_ylim(*panel.ylim)
    for ax in list(axes.flat)[len(panels) :]:
        ax.axis("off")
    fig.suptitle(title, fontsize=11)
    if handles:
        fig.legend(
            list(handles.values()),
            list(handles),
            loc="lower center",
            ncol=min(len(handles), 4),
            fontsize=8,
            frameon=False,
        )
    legend_rows = math.ceil(len(handles) / 4) if handles else 0
    fig.tight_layout(rect=(0, 0.035 + 0.035 * legend_rows, 1, 0.97))
    return fig


def weight_figure(
    panels: Sequence[tuple[str, np.ndarray]], limit: float, title: str, columns: int = 4
) -> Figure:
    """Weight mosaics (``(label, tile grid)`` pairs) on one symmetric scale ``±limit``
    (values beyond it saturate)."""
    n = max(len(panels), 1)
    columns = min(n, columns)
    rows = math.ceil(n / columns)
    width = max(3.3 * columns + 0.8, MIN_WIDTH)
    fig, axes = plt.subplots(rows, columns, figsize=(width, 3.0 * rows + 0.6), squeeze=False)
    cmap = plt.get_cmap(WEIGHT_CMAP).with_extremes(bad=GAP_COLOR)
    image = None
    for ax, (label, grid) in zip(axes.flat, panels, strict=False):
        image = ax.imshow(mosaic(grid), cmap=cmap, vmin=-limit, vmax=limit, interpolation="nearest")
        ax.set_title(label, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    for ax in list(axes.flat)[len(panels) :]:
        ax.axis("off")
    fig.suptitle(title, fontsize=11)
    right = 1 - 1.1 / width  # keep about 1.1 inch for the colour bar and its labels
    fig.tight_layout(rect=(0, 0, right, 0.95))
    if image is not None:
        bar = fig.add_axes((right + 0.15 / width, 0.15, 0.18 / width, 0.7))
        fig.colorbar(image, cax=bar, extend="both").ax.tick_params(labelsize=8)
    return fig


@dataclass(frozen=True)
class SavedFigure:
    """A figure written to disk: ``<stem>.png`` and ``<stem>.svg``, and the PNG as a data URI."""

    key: str
    title: str
    caption: str
    png: Path
    svg: Path
    data_uri: str


def save_figure(fig: Figure, directory: Path, key: str, title: str, caption: str) -> SavedFigure:
    """Write ``fig`` as ``<directory>/<key>.png`` and ``.svg``, close it, return both paths."""
    directory.mkdir(parents=True, exist_ok=True)
    png, svg = directory / f"{key}.png", directory / f"{key}.svg"
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=PNG_DPI)
    png.write_bytes(buffer.getvalue())
    fig.savefig(svg, format="svg")
    plt.close(fig)
    uri = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
    return SavedFigure(key, title, caption, png, svg, uri)
