"""Drawing what a Network in Network sees: feature-map grids, channel and depth-slice GIFs,
class activation maps over the input (PNG and GIF) and GIF → MP4, from NumPy arrays
(matplotlib's Agg canvas and Pillow, imported when first drawn).  ``nin.cam`` computes the class
maps; ``nin.visualize`` puts the pictures of one input together.

Normalisation, written down once: feature maps are stretched to [0, 1] either per channel
(``"channel"``, the default: every channel's own min..max, so weak channels still show their
pattern; brightness is not comparable between tiles, and a channel that is constant — a dead
ReLU is all zero — is drawn dark) or over the whole block (``"shared"``: one min..max for all
channels, so brightness compares channels).  Class maps always share one scale over all classes
(brightness compares classes), from 0 to the largest value of any class's map (the maps come
out of a ReLU, so they are ≥ 0).  Input images are stretched to their own min..max for display.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from .cam import ClassActivation
from .errors import InputError, UnknownNameError
from .extras import require_extra

NORMALIZATIONS = ("channel", "shared")
FEATURE_CMAP = "viridis"  # perceptually uniform: dark = low, yellow = high
HEAT_CMAP = "jet"  # the customary CAM heat map: blue = low, red = high
PANEL = 192  # pixels: GIF panels are enlarged (nearest neighbour) to about this size
MAX_FRAMES = 256  # a channel GIF of a wider block shows its first MAX_FRAMES channels
MAX_CLASSES = 50  # a class GIF of a model with more classes shows its MAX_CLASSES best scores


# -- pixels ----------------------------------------------------------------------------------


def _stretch(a: np.ndarray, axes: tuple[int, ...] | None = None) -> np.ndarray:
    """Min-max to [0, 1] over ``axes`` (all when None); a constant stretch is all zero."""
    a = np.asarray(a, dtype=np.float32)
    low = a.min(axis=axes, keepdims=True)
    span = a.max(axis=axes, keepdims=True) - low
    return np.where(span > 0, (a - low) / np.where(span > 0, span, 1), 0).astype(np.float32)


def normalize_channels(fmap: np.ndarray, normalize: str = "channel") -> np.ndarray:
    """A block output ``(C, *spatial)`` in [0, 1]: per channel or shared (module docstring)."""
    if normalize not in NORMALIZATIONS:
        raise UnknownNameError(f"unknown normalisation {normalize!r}; known: {', '.join(NORMALIZATIONS)}")
    return _stretch(fmap, tuple(range(1, fmap.ndim)) if normalize == "channel" else None)


def _colorize(a01: np.ndarray, cmap: str) -> np.ndarray:
    """Values in [0, 1] to RGB floats through a matplotlib colormap's lookup table."""
    from matplotlib import colormaps

    lut = colormaps[cmap].resampled(256)(np.arange(256))[:, :3].astype(np.float32)
    return lut[np.clip(np.round(a01 * 255), 0, 255).astype(np.intp)]


def _display(x: np.ndarray) -> np.ndarray:
    """One example ``(C, *spatial)`` as RGB floats ``(*spatial, 3)`` in [0, 1]: three channels
    as colour, otherwise the channel mean as grey."""
    shown = np.moveaxis(x, 0, -1) if x.shape[0] == 3 else np.repeat(x.mean(axis=0)[..., None], 3, axis=-1)
    return _stretch(shown)


def _overlay(rgb: np.ndarray, heat01: np.ndarray) -> np.ndarray:
    """A heat map over a dimmed grey copy of the image; hot places are more opaque."""
    grey = rgb.mean(axis=-1, keepdims=True) * 0.8
    alpha = (0.25 + 0.6 * heat01)[..., None]
    return grey * (1 - alpha) + _colorize(heat01, HEAT_CMAP) * alpha


def _to_uint8(rgb: np.ndarray) -> np.ndarray:
    return np.clip(np.round(rgb * 255), 0, 255).astype(np.uint8)


def _enlarge(rgb: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of ``(h, w, 3)`` to ``shape`` (pixels stay honest squares)."""
    rows = np.arange(shape[0]) * rgb.shape[0] // shape[0]
    cols = np.arange(shape[1]) * rgb.shape[1] // shape[1]
    return rgb[rows[:, None], cols[None, :]]


def _panel_shape(h: int, w: int) -> tuple[int, int]:
    factor = max(1, math.ceil(PANEL / max(h, w)))
    return h * factor, w * factor


@functools.cache
def _font(size: int):
    from PIL import ImageFont

    return ImageFont.load_default(size=size)


_GAP, _CAPTION, _HEADER = 8, 22, 30
_BACKGROUND, _INK, _MARK = (255, 255, 255), (20, 20, 20), (220, 30, 30)

_Panel = tuple[np.ndarray, str, bool]  # a GIF panel: RGB floats, its caption, marked or not


def _frame(panels: list[_Panel], header: str):
    """One GIF frame: a header line, then panels side by side, each ``(RGB floats, caption,
    marked)``; a marked panel gets a red border and a red caption.  The frame is as wide as its
    panels, or as its header or a caption needs (measured with the font that draws them)."""
    from PIL import Image, ImageDraw

    lefts = list(itertools.accumulate((p.shape[1] + _GAP for p, _, _ in panels[:-1]), initial=_GAP))
    height = max(p.shape[0] for p, _, _ in panels)
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    right = max(
        lefts[-1] + panels[-1][0].shape[1],
        _GAP + measure.textlength(header, font=_font(15)),
        *(
            left + measure.textlength(caption, font=_font(13))
            for left, (_, caption, _) in zip(lefts, panels, strict=True)
        ),
    )
    image = Image.new("RGB", (math.ceil(right) + _GAP, _HEADER + height + _CAPTION + _GAP), _BACKGROUND)
    draw = ImageDraw.Draw(image)
    draw.text((_GAP, 7), header, fill=_INK, font=_font(15))
    for left, (pixels, caption, marked) in zip(lefts, panels, strict=True):
        image.paste(Image.fromarray(_to_uint8(pixels)), (left, _HEADER))
        h, w = pixels.shape[:2]
        if marked:
            draw.rectangle((left - 3, _HEADER - 3, left + w + 2, _HEADER + h + 2), outline=_MARK, width=3)
        draw.text((left, _HEADER + h + 5), caption, fill=_MARK if marked else _INK, font=_font(13))
    return image


def _save_gif(frames: list, path: Path, duration_ms: int) -> Path:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    # each frame gets its own 256-colour palette; the fast octree is quicker than GIF's default
    # (docs/benchmarks.md, "Measured choices in the code")
    frames = [frame.quantize(method=Image.Quantize.FASTOCTREE) for frame in frames]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=duration_ms, loop=0)
    return path


def _animate(
    path: str | Path,
    label: str,
    count: int,
    step: Callable[[int], str],
    panels: Callable[[int], list[_Panel]],
    duration_ms: int,
    detail: Callable[[int], str] | None = None,
) -> Path:
    """Write a GIF of ``count`` frames: frame ``i`` shows ``panels(i)`` under the header
    ``{label} · {step(i)} · frame {i + 1} / {count}``, then `` · {detail(i)}`` when given.
    Every frame gets the size of the largest (a GIF's frames share its first frame's canvas)."""
    from PIL import Image

    frames = []
    for i in range(count):
        header = f"{label} · {step(i)} · frame {i + 1} / {count}" + (f" · {detail(i)}" if detail else "")
        frames.append(_frame(panels(i), header))
    size = (max(f.width for f in frames), max(f.height for f in frames))
    for i, frame in enumerate(frames):
        if frame.size != size:
            frames[i] = Image.new("RGB", size, _BACKGROUND)
            frames[i].paste(frame, (0, 0))
    return _save_gif(frames, Path(path), duration_ms)


def _save_figure(fig, path: str | Path, dpi: int = 100) -> Path:
    """Save a matplotlib figure as a PNG on white, making its folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, facecolor="white")
    return path


_TEXT_PT = 10  # the size of the figures' header lines


@functools.cache
def _renderer(dpi: float):
    from matplotlib.backends.backend_agg import RendererAgg

    return RendererAgg(1, 1, dpi)


def _text_width(text: str, fontsize: float, dpi: float, weight: str = "normal") -> float:
    """Pixels ``text`` takes at ``fontsize`` points on matplotlib's Agg renderer at ``dpi``."""
    from matplotlib.font_manager import FontProperties

    font = FontProperties(size=fontsize, weight=weight)
    width, _, _ = _renderer(dpi).get_text_width_height_descent(text, font, ismath=False)
    return width


def wrap_to_width(
    lines: Sequence[str], width_px: float, fontsize: float = _TEXT_PT, dpi: float = 100, weight: str = "normal"
) -> list[str]:
    """``lines`` (empty ones left out) broken so that none is wider than ``width_px`` as
    matplotlib draws it: at spaces, and inside a word (a long path or command) where the word
    alone is too wide."""

    def fits(text: str) -> bool:
        return _text_width(text, fontsize, dpi, weight) <= width_px

    out: list[str] = []
    for line in (line for line in lines if line):
        current = ""
        for word in line.split(" "):
            candidate = f"{current} {word}" if current else word
            if fits(candidate):
                current = candidate
                continue
            if current:
                out.append(current)
            while not fits(word):  # the longest head that fits (at least one character), by bisection
                low, high = 1, len(word) - 1
                while low < high:
                    mid = (low + high + 1) // 2
                    low, high = (mid, high) if fits(word[:mid]) else (low, mid - 1)
                out.append(word[:low])
                word = word[low:]
            current = word
        out.append(current)
    return out


def _headline(fig, lines: Sequence[str]) -> None:
    """A figure's header lines at its top left (wrapped to its width by ``_header_lines``)."""
    fig.suptitle("\n".join(lines), fontsize=_TEXT_PT, x=0.02, ha="left", parse_math=False)


def _header_lines(width_in: float, *lines: str) -> list[str]:
    """The header lines of a figure ``width_in`` inches wide (at 100 dpi), wrapped to fit between
    ``_headline``'s 2 % left margin and a margin of the same size on the right."""
    return wrap_to_width(lines, 0.96 * width_in * 100)


def _colour_bar(fig, rect: tuple[float, float, float, float], cmap: str, low: float, high: float, ticks=None):
    """A colour bar for ``cmap`` from ``low`` to ``high`` in new axes at ``rect`` (figure fractions)."""
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    return fig.colorbar(ScalarMappable(Normalize(low, high), cmap), cax=fig.add_axes(rect), ticks=ticks)


def _show(ax, pixels: np.ndarray, edge: str | None = None, width: float = 1) -> None:
    """Pixels in axes without ticks; ``edge`` colours the border, ``width`` points wide."""
    ax.imshow(pixels, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    if edge:
        for spine in ax.spines.values():
            spine.set_edgecolor(edge)
            spine.set_linewidth(width)


def shape_text(shape: Sequence[int]) -> str:
    return "×".join(str(s) for s in shape)


def class_name(k: int, class_names: Sequence[str] | None) -> str:
    """``"3 cat"``; ``"3"`` where the name is the number (digits); ``"class 3"`` without names."""
    if not class_names:
        return f"class {k}"
    return str(k) if class_names[k] == str(k) else f"{k} {class_names[k]}"


def _class_caption(k: int, activation: ClassActivation, class_names: Sequence[str] | None) -> str:
    """The class's name, after ``"predicted: "`` when it is the predicted one."""
    return ("predicted: " if k == activation.predicted else "") + class_name(k, class_names)


# -- 2-D pictures ----------------------------------------------------------------------------


def _tile_grid(tiles: np.ndarray, tile_px: int, gap: int = 2) -> tuple[np.ndarray, int, int]:
    """RGB tiles ``(C, h, w, 3)`` enlarged to about ``tile_px`` and laid out in a near-square
    grid with gaps; returns the mosaic, the number of columns and the enlarged tile size."""
    c, h, w, _ = tiles.shape
    cols = math.ceil(math.sqrt(c))
    rows = math.ceil(c / cols)
    factor = max(1, round(tile_px / max(h, w)))
    th, tw = h * factor, w * factor
    mosaic = np.ones((rows * (th + gap) + gap, cols * (tw + gap) + gap, 3), np.float32)
    for i in range(c):
        top, left = gap + (i // cols) * (th + gap), gap + (i % cols) * (tw + gap)
        mosaic[top : top + th, left : left + tw] = _enlarge(tiles[i], (th, tw))
    return mosaic, cols, max(th, tw)


def feature_grid(
    fmap: np.ndarray,
    path: str | Path,
    title: str,
    normalize: str = "channel",
    note: str = "",
) -> Path:
    """PNG of one block output ``(C, H, W)``: every channel a tile in a grid, numbered, in
    ``FEATURE_CMAP``, with a colour bar that says what the scale means."""
    from matplotlib.figure import Figure

    c = fmap.shape[0]
    values = normalize_channels(fmap, normalize)
    cols = math.ceil(math.sqrt(c))
    tile_px = int(np.clip(1100 // cols, 40, 150))
    mosaic, cols, tile = _tile_grid(_colorize(values, FEATURE_CMAP), tile_px)
    flat = fmap.reshape(c, -1)
    constant = int(np.sum(flat.max(axis=1) <= flat.min(axis=1)))
    scale = "each channel stretched to its own min..max" if normalize == "channel" else "one scale for all channels"
    dpi, side = 100, 110
    height, width = mosaic.shape[:2]
    width_px = max(width + side, 560)
    lines = wrap_to_width(
        [title, f"{c} channels, {scale}" + (f"; {constant} constant here (drawn dark)" if constant else ""), note],
        width_px - 20,
        dpi=dpi,
    )
    top = 30 + 17 * len(lines)
    fig = Figure(figsize=(width_px / dpi, (height + top + 10) / dpi), dpi=dpi)
    ax = fig.add_axes((10 / width_px, 10 / (height + top + 10), width / width_px, height / (height + top + 10)))
    ax.imshow(mosaic, interpolation="nearest")
    ax.set_axis_off()
    fontsize = 7 if tile < 60 else 9
    for i in range(c):
        y, x = 2 + (i // cols) * (tile + 2), 2 + (i % cols) * (tile + 2)
        ax.text(x + 2, y + 2, str(i), color="white", fontsize=fontsize, va="top", ha="left",
                bbox={"facecolor": "black", "alpha": 0.55, "pad": 1, "linewidth": 0})  # fmt: skip
    fig.text(10 / width_px, 1 - 8 / (height + top + 10), "\n".join(lines), va="top", ha="left",
             fontsize=_TEXT_PT, parse_math=False)  # fmt: skip
    rect = ((width + 30) / width_px, 0.15, 14 / width_px, 0.6)
    if normalize == "channel":
        bar = _colour_bar(fig, rect, FEATURE_CMAP, 0, 1, ticks=[0, 1])
        bar.ax.set_yticklabels(["channel\nmin", "channel\nmax"], fontsize=8)
    else:
        bar = _colour_bar(fig, rect, FEATURE_CMAP, float(fmap.min()), float(fmap.max()))
        bar.ax.tick_params(labelsize=8)
    return _save_figure(fig, path, dpi)


def channel_gif(
    fmap: np.ndarray,
    path: str | Path,
    label: str,
    image: np.ndarray | None = None,
    normalize: str = "channel",
    duration_ms: int = 300,
) -> Path:
    """GIF of one block output ``(C, H, W)``, one frame per channel (the first ``MAX_FRAMES``),
    next to the input ``image`` ``(C_in, H_in, W_in)`` when given.  Frame header:
    ``{label} · channel i · frame n / N``."""
    values = _colorize(normalize_channels(fmap, normalize)[:MAX_FRAMES], FEATURE_CMAP)
    shape = _panel_shape(*(image.shape[1:] if image is not None else fmap.shape[1:]))
    first = [(_enlarge(_display(image), shape), "input", False)] if image is not None else []

    def panels(i: int) -> list[_Panel]:
        return [*first, (_enlarge(values[i], shape), f"channel {i}", False)]

    return _animate(path, label, len(values), lambda i: f"channel {i}", panels, duration_ms)


def cam_figure(
    image: np.ndarray,
    activation: ClassActivation,
    path: str | Path,
    title: str,
    class_names: Sequence[str] | None = None,
    limit: int = 11,
    note: str = "",
) -> Path:
    """PNG: the input, then the class maps of the ``limit`` best-scoring classes over it, the
    predicted one framed in red; one colour scale for all (module docstring)."""
    from matplotlib.figure import Figure

    rgb = _display(image)
    ranked = activation.ranked(limit)
    cols = min(6, len(ranked) + 1)
    rows = math.ceil((len(ranked) + 1) / cols)
    shown = (
        f"the {len(ranked)} best-scoring of {len(activation.scores)} classes"
        if len(ranked) < len(activation.scores)
        else "every class"
    )
    width = 2.3 * cols + 1.0
    lines = _header_lines(width, title, f"class activation maps of {shown}: a class's score is its map's mean", note)
    cell_px = 100 * width * 0.85 / (cols + 0.2 * (cols - 1))  # a grid cell: (right − left) over cols and wspace
    titles = {
        k: wrap_to_width(
            [_class_caption(k, activation, class_names),
             f"score {activation.scores[k]:.3g} · p {activation.probabilities[k]:.2f}"],
            cell_px, 9, weight="bold" if k == activation.predicted else "normal",
        )
        for k in ranked
    }  # fmt: skip
    extra = 0.17 * max(0, max(map(len, titles.values())) - 2)  # inches for title lines past two
    header = 0.3 * len(lines) + extra
    height = (2.5 + extra) * rows + header
    fig = Figure(figsize=(width, height), dpi=100)
    grid = fig.add_gridspec(
        rows, cols, left=0.02, right=0.87, top=1 - (header + 0.05) / height, bottom=0.02, hspace=0.3 + extra / 1.9
    )
    ax = fig.add_subplot(grid[0, 0])
    ax.imshow(rgb, interpolation="nearest")
    ax.set_title("input", fontsize=10)
    ax.set_axis_off()
    for i, k in enumerate(ranked, start=1):
        ax = fig.add_subplot(grid[i // cols, i % cols])
        predicted = k == activation.predicted
        _show(ax, _overlay(rgb, activation.heat(k)), "#d22" if predicted else "#bbb", 4 if predicted else 1)
        ax.set_title(
            "\n".join(titles[k]),
            fontsize=9,
            parse_math=False,
            color="#c00" if predicted else "black",
            fontweight="bold" if predicted else "normal",
        )
    _headline(fig, lines)
    bar = _colour_bar(fig, (0.89, 0.15, 0.02, 0.6), HEAT_CMAP, 0, activation.peak)
    bar.set_label("class map value (shared scale)", fontsize=8)
    bar.ax.tick_params(labelsize=8)
    return _save_figure(fig, path)


def cam_gif(
    image: np.ndarray,
    activation: ClassActivation,
    path: str | Path,
    label: str,
    class_names: Sequence[str] | None = None,
    duration_ms: int = 700,
) -> Path:
    """GIF stepping through the classes (in class order; the ``MAX_CLASSES`` best-scoring ones
    when there are more): input | its class map over the input; the predicted class framed."""
    rgb = _display(image)
    shape = _panel_shape(*rgb.shape[:2])
    k_all = len(activation.scores)
    classes = range(k_all) if k_all <= MAX_CLASSES else sorted(activation.ranked(MAX_CLASSES))
    first = (_enlarge(rgb, shape), "input", False)

    def panels(n: int) -> list[_Panel]:
        k = classes[n]
        heat = _enlarge(_overlay(rgb, activation.heat(k)), shape)
        return [first, (heat, _class_caption(k, activation, class_names), k == activation.predicted)]

    def detail(n: int) -> str:
        k = classes[n]
        return f"score {activation.scores[k]:.3g} · p {activation.probabilities[k]:.2f}"

    return _animate(path, label, len(classes), lambda n: f"class {classes[n]}", panels, duration_ms, detail)


# -- 3-D pictures ----------------------------------------------------------------------------


def _depth_slice(d: int) -> str:
    """The step of a frame of the GIFs through depth."""
    return f"depth slice {d}"


def input_slices_gif(volume: np.ndarray, path: str | Path, label: str, duration_ms: int = 150) -> Path:
    """GIF of an input volume ``(C, D, H, W)``, one frame per depth slice."""
    rgb = _display(volume)
    shape = _panel_shape(*rgb.shape[1:3])

    def panels(d: int) -> list[_Panel]:
        return [(_enlarge(rgb[d], shape), f"slice {d}", False)]

    return _animate(path, label, rgb.shape[0], _depth_slice, panels, duration_ms)


def _matching_slice(d: int, depth: int, depth_in: int) -> int:
    """The input slice at the centre of feature slice ``d`` of ``depth``."""
    return min(depth_in - 1, int((d + 0.5) * depth_in / depth))


def volume_slices_gif(
    fvol: np.ndarray,
    path: str | Path,
    label: str,
    volume: np.ndarray | None = None,
    channels: int = 6,
    normalize: str = "channel",
    duration_ms: int = 200,
) -> Path:
    """GIF of one block output ``(C, D, H, W)``, one frame per depth slice: the matching input
    slice, then the ``channels`` most active channels (highest mean), each normalised over its
    whole volume so that frames compare."""
    chosen = [int(c) for c in np.argsort(-fvol.reshape(fvol.shape[0], -1).mean(axis=1), kind="stable")[:channels]]
    values = _colorize(normalize_channels(fvol, normalize)[chosen], FEATURE_CMAP)
    shape = _panel_shape(*(volume.shape[2:] if volume is not None else fvol.shape[2:]))
    shape = (max(shape[0] // 2, 64), max(shape[1] // 2, 64)) if len(chosen) > 3 else shape
    rgb = _display(volume) if volume is not None else None
    depth = fvol.shape[1]

    def panels(d: int) -> list[_Panel]:
        shown = [(_enlarge(values[i, d], shape), f"ch {c}", False) for i, c in enumerate(chosen)]
        if rgb is None:
            return shown
        d_in = _matching_slice(d, depth, rgb.shape[0])
        return [(_enlarge(rgb[d_in], shape), f"input {d_in}", False), *shown]

    detail = f"the {len(chosen)} most active channels"
    return _animate(path, label, depth, _depth_slice, panels, duration_ms, lambda _: detail)


def cam_slices_gif(
    volume: np.ndarray,
    activation: ClassActivation,
    path: str | Path,
    label: str,
    class_names: Sequence[str] | None = None,
    classes: int = 3,
    duration_ms: int = 150,
) -> Path:
    """GIF through the input's depth: the input slice, then the class maps (enlarged
    trilinearly) of the ``classes`` best-scoring classes over it; the predicted one framed."""
    rgb = _display(volume)
    shape = _panel_shape(*rgb.shape[1:3])
    ranked = activation.ranked(classes)
    heat = {k: activation.heat(k) for k in ranked}
    captions = {
        k: f"{_class_caption(k, activation, class_names)} (p {activation.probabilities[k]:.2f})" for k in ranked
    }

    def panels(d: int) -> list[_Panel]:
        maps = [(_enlarge(_overlay(rgb[d], heat[k][d]), shape), captions[k], k == activation.predicted) for k in ranked]
        return [(_enlarge(rgb[d], shape), "input", False), *maps]

    return _animate(path, label, rgb.shape[0], _depth_slice, panels, duration_ms, lambda _: "class maps, one scale")


def cam_slices_figure(
    volume: np.ndarray,
    activation: ClassActivation,
    path: str | Path,
    title: str,
    class_names: Sequence[str] | None = None,
    classes: int = 3,
    slices: int = 8,
    note: str = "",
) -> Path:
    """PNG: rows are the best-scoring classes (predicted first, in red), columns depth slices
    evenly spaced through those where the input varies, with the class's map over them; the
    first row is the input."""
    from matplotlib.figure import Figure

    rgb = _display(volume)
    depth = rgb.shape[0]
    spread = (volume.max(axis=(0, 2, 3)) - volume.min(axis=(0, 2, 3))).astype(np.float64)
    busy = np.flatnonzero(spread > 0.1 * spread.max()) if spread.max() > 0 else np.arange(depth)
    picks = sorted({int(d) for d in np.linspace(busy[0], busy[-1], min(slices, depth)).round()})
    ranked = activation.ranked(classes)
    rows, cols = len(ranked) + 1, len(picks)
    width = 1.5 * cols + 2.4
    names = {  # beside the rows, right-aligned in the 14 % left margin less a gap
        k: wrap_to_width(
            [class_name(k, class_names), f"p {activation.probabilities[k]:.2f}"], 100 * width * 0.14 - 12, 9
        )
        for k in ranked
    }
    what = "class activation volume: depth slices, classes by score (predicted in red)"
    lines = _header_lines(width, title, what, note)
    header = 0.28 * len(lines)
    height = 1.6 * rows + header + 0.15
    fig = Figure(figsize=(width, height), dpi=100)
    grid = fig.add_gridspec(
        rows, cols, left=0.14, right=0.88, top=1 - (header + 0.01) / height, bottom=0.02, hspace=0.15
    )
    for r, k in enumerate([None, *ranked]):
        for c, d in enumerate(picks):
            ax = fig.add_subplot(grid[r, c])
            predicted = k == activation.predicted
            shown = rgb[d] if k is None else _overlay(rgb[d], activation.heat(k)[d])
            _show(ax, shown, "#d22" if predicted else None, 2.5)
            if r == 0:
                ax.set_title(f"depth {d}", fontsize=8)
            if c == 0:
                name = "input" if k is None else "\n".join(names[k])
                ax.set_ylabel(name, fontsize=9, rotation=0, ha="right", va="center",
                              color="#c00" if predicted else "black", parse_math=False)  # fmt: skip
    _headline(fig, lines)
    bar = _colour_bar(fig, (0.91, 0.15, 0.015, 0.55), HEAT_CMAP, 0, activation.peak)
    bar.ax.tick_params(labelsize=7)
    return _save_figure(fig, path)


# -- video -----------------------------------------------------------------------------------


def gif_to_mp4(gif_path: str | Path, mp4_path: str | Path, fps: float | None = None) -> Path:
    """Re-encode a GIF as H.264 MP4 (yuv420p, playable everywhere), one video frame per GIF
    frame.  Frames are padded with white to even sizes, which yuv420p needs.  ``fps`` defaults
    to the GIF's own rate (1000 / its first frame's duration in ms)."""
    require_extra("video", "an MP4 of a GIF")
    import imageio_ffmpeg
    from PIL import Image, ImageSequence

    gif_path, mp4_path = Path(gif_path), Path(mp4_path)
    if not gif_path.is_file():
        raise InputError(f"no GIF at {gif_path}")
    with Image.open(gif_path) as im:
        if fps is None:
            fps = 1000.0 / max(int(im.info.get("duration", 100)), 10)
        frames = np.stack([np.asarray(frame.convert("RGB")) for frame in ImageSequence.Iterator(im)])
    _, h, w, _ = frames.shape
    frames = np.pad(frames, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)), constant_values=255)
    mp4_path.parent.mkdir(parents=True, exist_ok=True)
    writer = imageio_ffmpeg.write_frames(
        str(mp4_path),
        (frames.shape[2], frames.shape[1]),
        fps=fps,
        codec="libx264",
        pix_fmt_out="yuv420p",
        macro_block_size=1,
        output_params=["-crf", "18"],
    )
    writer.send(None)
    for frame in frames:
        writer.send(np.ascontiguousarray(frame))
    writer.close()
    return mp4_path
