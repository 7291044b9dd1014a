"""Pictures of what a Network in Network sees: feature maps, channel animations and class
activation maps, for images (2-D) and volumes (3-D).

Class activation maps (CAM): Zhou, Khosla, Lapedriza, Oliva, Torralba, "Learning Deep
Features for Discriminative Localization", CVPR 2016, arXiv:1512.04150.  A NiN needs no
extra weights for them: its last mlpconv block outputs one map per class and global average
pooling turns each map into that class's score (the paper's "confidence maps", Lin et al.
2014 §3.2), so the map *is* the class activation map and its mean is the logit.  A spec that
ends in a fully connected head (``nin_d2l_fc``) has no such maps.

Capture goes through a backend's ``intermediates`` (or the NumPy oracle for ``"numpy"``);
everything else works on NumPy arrays, and a framework is never imported here.

    logits, acts = capture("numpy", spec, weights, x)
    paths = render(spec, x, logits, acts, "out/")            # or, both at once:
    paths = visualize("torch", spec, weights, x, "out/", class_names=("zero", "one", ...))

Normalisation, written down once: feature maps are stretched to [0, 1] either per channel
(``"channel"``, the default: every channel's own min..max, so weak channels still show their
pattern; brightness is not comparable between tiles, and a channel that is constant — a dead
ReLU is all zero — is drawn dark) or over the whole block (``"shared"``: one min..max for all
channels, so brightness compares channels).  Class maps always share one scale over all classes
(brightness compares classes), from 0 to the largest value of any class's map (the maps come
out of a ReLU, so they are ≥ 0).  Input images are stretched to their own min..max for display.

Files written by ``render`` (``b`` numbers the blocks from 0):

* 2-D: ``block{b}_features.png`` (the channel grid), ``block{b}_channels.gif`` (a frame per
  channel, next to the input), ``cam.png`` and ``cam_classes.gif`` (a frame per class);
* 3-D: ``block{b}_features.png`` (the grid at the block's most active depth slice),
  ``block{b}_slices.gif`` (a frame per depth slice of the block: the matching input slice and
  the most active channels), ``input_slices.gif``, ``cam_slices.png`` and ``cam_slices.gif``
  (a frame per input depth slice: the best-scoring classes' maps over it);
* with ``mp4=True``, an ``.mp4`` next to every GIF.
"""

from __future__ import annotations

import argparse
import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import InputError, SpecError, UnknownNameError
from .shapes import check_input, layer_table
from .spec import GlobalAvgPool, NiNBlock, NiNSpec
from .weights import Weights

NORMALIZATIONS = ("channel", "shared")
FEATURE_CMAP = "viridis"  # perceptually uniform: dark = low, yellow = high
HEAT_CMAP = "jet"  # the customary CAM heat map: blue = low, red = high
PANEL = 192  # pixels: GIF panels are enlarged (nearest neighbour) to about this size
MAX_FRAMES = 256  # a channel GIF of a wider block shows its first MAX_FRAMES channels
MAX_CLASSES = 50  # a class GIF of a model with more classes shows its MAX_CLASSES best scores

HELP = "feature maps, channel animations and class activation maps of one input"


# -- capture ---------------------------------------------------------------------------------


def capture(backend: str, spec: NiNSpec, weights: Weights, x: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Logits ``(N, K)`` and every layer's output ``{name: NCHW / NCDHW array}``, float32.

    ``backend`` is ``"numpy"`` (the NumPy oracle, no framework) or a backend name
    (``nin.list_backends()``), which builds the model and loads ``weights`` into it."""
    if backend == "numpy":
        from .reference import forward

        logits, acts = forward(spec, weights, x)
    else:
        from . import get_backend

        adapter = get_backend(backend)
        model = adapter.build(spec)
        adapter.load_state(model, weights)
        logits, acts = adapter.forward(model, x), adapter.intermediates(model, x)
    return np.asarray(logits, np.float32), {name: np.asarray(a, np.float32) for name, a in acts.items()}


def block_outputs(spec: NiNSpec) -> dict[str, str]:
    """``{block name: the layer that is its output}``, e.g. ``{"block0": "block0.conv2"}``."""
    return {
        name: f"{name}.conv{len(layer.convs) - 1}" for name, layer in spec.named_layers() if isinstance(layer, NiNBlock)
    }


# -- class activation maps -------------------------------------------------------------------


def class_map_problem(spec: NiNSpec) -> str | None:
    """Why ``spec`` has no class activation maps, or None when it has them."""
    if isinstance(spec.layers[-1], GlobalAvgPool) and isinstance(spec.layers[-2], NiNBlock):
        return None
    if not isinstance(spec.layers[-1], GlobalAvgPool):
        return (
            f"{spec.name} ends in a fully connected head, which mixes every position of every channel "
            f"into each class score, so it has no per-class map to show; class activation maps need "
            f"NiN's classifier block followed by global average pooling (e.g. nin_d2l)"
        )
    return (
        f"{spec.name} does not pool its last NiN block straight into class scores (a pooling or dropout "
        f"layer sits between them), so that block's maps are not class activation maps"
    )


def class_maps(spec: NiNSpec, acts: dict[str, np.ndarray]) -> np.ndarray:
    """The class activation maps ``(N, K, *spatial)``: the last block's output, whose spatial
    mean is the logits.  Raises ``SpecError`` for specs that have none (``class_map_problem``)."""
    problem = class_map_problem(spec)
    if problem:
        raise SpecError(problem)
    return acts[list(block_outputs(spec).values())[-1]]


@dataclass(frozen=True)
class ClassActivation:
    """One example's class activation maps at the input's size."""

    maps: np.ndarray  # (K, *input spatial), enlarged bilinearly / trilinearly
    scores: np.ndarray  # (K,) logits: the mean of each map before upsampling
    probabilities: np.ndarray  # (K,) softmax of the scores

    @property
    def predicted(self) -> int:
        return int(np.argmax(self.scores))

    @property
    def peak(self) -> float:
        """The top of the shared colour scale: the largest value of any class's map (1 when
        every map is 0)."""
        return float(self.maps.max()) or 1.0

    def heat(self, k: int) -> np.ndarray:
        """Class ``k``'s map on the shared scale, in [0, 1]."""
        return np.clip(self.maps[k] / self.peak, 0, 1)

    def ranked(self, limit: int | None = None) -> list[int]:
        """Class indices, highest score first."""
        return [int(k) for k in np.argsort(-self.scores, kind="stable")[:limit]]


def class_activation(spec: NiNSpec, x: np.ndarray, logits: np.ndarray, acts: dict[str, np.ndarray]) -> ClassActivation:
    """The first example's class maps, enlarged to its input size by ``nin.data.resize``
    (bilinear / trilinear, pixel centres at i + 0.5, edges clamped)."""
    from .data import resize

    maps = class_maps(spec, acts)[0]
    scores = np.asarray(logits[0], dtype=np.float64)
    p = np.exp(scores - scores.max())
    return ClassActivation(resize(maps[None], x.shape[2:])[0], scores, p / p.sum())


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
    marked)``; a marked panel gets a red border and a red caption."""
    from PIL import Image, ImageDraw

    height = max(p.shape[0] for p, _, _ in panels)
    width = sum(p.shape[1] for p, _, _ in panels) + _GAP * (len(panels) + 1)
    width = max(width, 8 * len(header) + 2 * _GAP)
    image = Image.new("RGB", (width, _HEADER + height + _CAPTION + _GAP), _BACKGROUND)
    draw = ImageDraw.Draw(image)
    draw.text((_GAP, 7), header, fill=_INK, font=_font(15))
    left = _GAP
    for pixels, caption, marked in panels:
        image.paste(Image.fromarray(_to_uint8(pixels)), (left, _HEADER))
        h, w = pixels.shape[:2]
        if marked:
            draw.rectangle((left - 3, _HEADER - 3, left + w + 2, _HEADER + h + 2), outline=_MARK, width=3)
        draw.text((left, _HEADER + h + 5), caption, fill=_MARK if marked else _INK, font=_font(13))
        left += w + _GAP
    return image


def _save_gif(frames: list, path: Path, duration_ms: int) -> Path:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    # each frame gets its own 256-colour palette; the fast octree is 5× quicker than GIF's default
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
    ``{label} · {step(i)} · frame {i + 1} / {count}``, then `` · {detail(i)}`` when given."""
    frames = []
    for i in range(count):
        header = f"{label} · {step(i)} · frame {i + 1} / {count}" + (f" · {detail(i)}" if detail else "")
        frames.append(_frame(panels(i), header))
    return _save_gif(frames, Path(path), duration_ms)


def _save_figure(fig, path: str | Path, dpi: int = 100) -> Path:
    """Save a matplotlib figure as a PNG on white, making its folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, facecolor="white")
    return path


def _headline(fig, text: str, note: str) -> None:
    """A figure's title at its top left, with ``note`` (when given) on a line of its own."""
    fig.suptitle(text + (f"\n{note}" if note else ""), fontsize=10, x=0.02, ha="left")


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


def _shape_text(shape: Sequence[int]) -> str:
    return "×".join(str(s) for s in shape)


def _class_name(k: int, class_names: Sequence[str] | None) -> str:
    """``"3 cat"``; ``"3"`` where the name is the number (digits); ``"class 3"`` without names."""
    if not class_names:
        return f"class {k}"
    return str(k) if class_names[k] == str(k) else f"{k} {class_names[k]}"


def _class_caption(k: int, activation: ClassActivation, class_names: Sequence[str] | None) -> str:
    """The class's name, after ``"predicted: "`` when it is the predicted one."""
    return ("predicted: " if k == activation.predicted else "") + _class_name(k, class_names)


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
    dpi, side, top = 100, 110, 80 if note else 60
    height, width = mosaic.shape[:2]
    width_px = max(width + side, 560)
    fig = Figure(figsize=(width_px / dpi, (height + top + 10) / dpi), dpi=dpi)
    ax = fig.add_axes((10 / width_px, 10 / (height + top + 10), width / width_px, height / (height + top + 10)))
    ax.imshow(mosaic, interpolation="nearest")
    ax.set_axis_off()
    fontsize = 7 if tile < 60 else 9
    for i in range(c):
        y, x = 2 + (i // cols) * (tile + 2), 2 + (i % cols) * (tile + 2)
        ax.text(x + 2, y + 2, str(i), color="white", fontsize=fontsize, va="top", ha="left",
                bbox={"facecolor": "black", "alpha": 0.55, "pad": 1, "linewidth": 0})  # fmt: skip
    scale = "each channel stretched to its own min..max" if normalize == "channel" else "one scale for all channels"
    lines = [title, f"{c} channels, {scale}" + (f"; {constant} constant here (drawn dark)" if constant else "")]
    fig.text(10 / width_px, 1 - 8 / (height + top + 10), "\n".join([*lines, note] if note else lines),
             va="top", ha="left", fontsize=10)  # fmt: skip
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
    height = 2.5 * rows + 0.9
    fig = Figure(figsize=(2.3 * cols + 1.0, height), dpi=100)
    grid = fig.add_gridspec(rows, cols, left=0.02, right=0.87, top=1 - 0.95 / height, bottom=0.02, hspace=0.3)
    ax = fig.add_subplot(grid[0, 0])
    ax.imshow(rgb, interpolation="nearest")
    ax.set_title("input", fontsize=10)
    ax.set_axis_off()
    for i, k in enumerate(ranked, start=1):
        ax = fig.add_subplot(grid[i // cols, i % cols])
        predicted = k == activation.predicted
        _show(ax, _overlay(rgb, activation.heat(k)), "#d22" if predicted else "#bbb", 4 if predicted else 1)
        ax.set_title(
            f"{_class_caption(k, activation, class_names)}\n"
            f"score {activation.scores[k]:.3g} · p {activation.probabilities[k]:.2f}",
            fontsize=9,
            color="#c00" if predicted else "black",
            fontweight="bold" if predicted else "normal",
        )
    shown = (
        f"the {len(ranked)} best-scoring of {len(activation.scores)} classes"
        if len(ranked) < len(activation.scores)
        else "every class"
    )
    _headline(fig, f"{title}\nclass activation maps of {shown}: a class's score is its map's mean", note)
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
    fig = Figure(figsize=(1.5 * cols + 2.4, 1.6 * rows + 1.0), dpi=100)
    grid = fig.add_gridspec(
        rows, cols, left=0.14, right=0.88, top=1 - 0.85 / (1.6 * rows + 1.0), bottom=0.02, hspace=0.15
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
                name = "input" if k is None else f"{_class_name(k, class_names)}\np {activation.probabilities[k]:.2f}"
                ax.set_ylabel(
                    name, fontsize=9, rotation=0, ha="right", va="center", color="#c00" if predicted else "black"
                )
    _headline(fig, f"{title}\nclass activation volume: depth slices, classes by score (predicted in red)", note)
    bar = _colour_bar(fig, (0.91, 0.15, 0.015, 0.55), HEAT_CMAP, 0, activation.peak)
    bar.ax.tick_params(labelsize=7)
    return _save_figure(fig, path)


# -- video -----------------------------------------------------------------------------------


def gif_to_mp4(gif_path: str | Path, mp4_path: str | Path, fps: float | None = None) -> Path:
    """Re-encode a GIF as H.264 MP4 (yuv420p, playable everywhere), one video frame per GIF
    frame.  Frames are padded with white to even sizes, which yuv420p needs.  ``fps`` defaults
    to the GIF's own rate (1000 / its first frame's duration in ms)."""
    import imageio.v3 as iio
    import imageio_ffmpeg
    from PIL import Image

    gif_path, mp4_path = Path(gif_path), Path(mp4_path)
    if not gif_path.is_file():
        raise InputError(f"no GIF at {gif_path}")
    if fps is None:
        with Image.open(gif_path) as im:
            fps = 1000.0 / max(int(im.info.get("duration", 100)), 10)
    frames = iio.imread(gif_path, index=None, mode="RGB")
    if frames.ndim == 3:
        frames = frames[None]
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


# -- everything at once ----------------------------------------------------------------------


def render(
    spec: NiNSpec,
    x: np.ndarray,
    logits: np.ndarray,
    acts: dict[str, np.ndarray],
    out_dir: str | Path,
    class_names: Sequence[str] | None = None,
    *,
    mp4: bool = False,
    normalize: str = "channel",
    note: str = "",
) -> list[Path]:
    """Write every picture of the first example (the file table is in the module docstring)
    and return the paths in writing order.  Class maps are left out, without error, for specs
    that have none (``class_map_problem`` says why).  ``note`` is printed under PNG titles
    (e.g. "untrained: seeded initial weights")."""
    x = _first_example(spec, x)
    if class_names is not None and len(class_names) != spec.num_classes:
        raise InputError(f"{spec.name} has {spec.num_classes} classes but {len(class_names)} class names were given")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    shapes = {row.name: row.output_shape for row in layer_table(spec, x.shape[2:])}
    has_cam = class_map_problem(spec) is None
    image = x[0]
    paths: list[Path] = []
    for block, layer in block_outputs(spec).items():
        fmap = acts[layer][0]
        label = f"{spec.name} {block} ({layer}, {_shape_text(shapes[layer])})"
        if spec.ndim == 2:
            paths.append(feature_grid(fmap, out / f"{block}_features.png", label, normalize, note))
            paths.append(channel_gif(fmap, out / f"{block}_channels.gif", label, image, normalize))
        else:
            mid = int(np.argmax(fmap.sum(axis=(0, 2, 3))))
            title = f"{label}, its most active depth slice ({mid} of 0–{fmap.shape[1] - 1})"
            paths.append(feature_grid(fmap[:, mid], out / f"{block}_features.png", title, normalize, note))
            paths.append(volume_slices_gif(fmap, out / f"{block}_slices.gif", label, image, normalize=normalize))
    if spec.ndim == 3:
        paths.append(input_slices_gif(image, out / "input_slices.gif", f"{spec.name} input {_shape_text(image.shape)}"))
    if has_cam:
        activation = class_activation(spec, x, logits, acts)
        if spec.ndim == 2:
            paths.append(cam_figure(image, activation, out / "cam.png", spec.name, class_names, note=note))
            paths.append(cam_gif(image, activation, out / "cam_classes.gif", spec.name, class_names))
        else:
            paths.append(
                cam_slices_figure(image, activation, out / "cam_slices.png", spec.name, class_names, note=note)
            )
            paths.append(cam_slices_gif(image, activation, out / "cam_slices.gif", spec.name, class_names))
    if mp4:
        paths += [gif_to_mp4(p, p.with_suffix(".mp4")) for p in list(paths) if p.suffix == ".gif"]
    return paths


def visualize(
    backend: str,
    spec: NiNSpec,
    weights: Weights,
    x: np.ndarray,
    out_dir: str | Path,
    class_names: Sequence[str] | None = None,
    *,
    mp4: bool = False,
    normalize: str = "channel",
    note: str = "",
) -> list[Path]:
    """``capture`` through ``backend``, then ``render``.  ``x`` is one example
    ``(C, *spatial)`` or a batch, of which the first is used."""
    x = _first_example(spec, x)
    logits, acts = capture(backend, spec, weights, x)
    return render(spec, x, logits, acts, out_dir, class_names, mp4=mp4, normalize=normalize, note=note)


def _first_example(spec: NiNSpec, x: np.ndarray) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim == spec.ndim + 1:
        x = x[None]
    return check_input(spec, x[:1])


# -- the command: nin visualize ----------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The options of ``nin visualize``; returns the parser."""
    from .frameworks import list_backends

    parser.description = (
        "Draw what a NiN sees for one input: each block's feature maps (PNG grid and a GIF through "
        "its channels) and the class activation maps (PNG and a GIF through the classes); for "
        "volumetric models, GIFs through the depth slices instead."
    )
    parser.add_argument("--backend", default="numpy", choices=["numpy", *list_backends()],
                        help="who runs the network: the NumPy reference (default) or a framework")  # fmt: skip
    parser.add_argument("--model", required=True, help="a zoo model (nin models lists them)")
    parser.add_argument(
        "--weights",
        metavar="FILE",
        help=".npz or .safetensors canonical weights, or 'pretrained' "
        "(default: the shipped trained weights where the model has them, else seeded init)",
    )
    parser.add_argument("--seed", type=int, help="draw seeded initial weights (default seed 0 where none ship)")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--input", metavar="IMAGE", help="a PNG/JPEG, converted to the model's channels and size")
    source.add_argument("--sample", type=int, metavar="N", help="test example N of --data (default: 0)")
    parser.add_argument(
        "--data", help="data set for --sample: mnist5k, synthetic (2-D default) or volumes (3-D default)"
    )
    parser.add_argument("--out", required=True, metavar="DIR", help="folder for the pictures")
    parser.add_argument("--normalize", choices=NORMALIZATIONS, default="channel", help="feature-map scale")
    parser.add_argument("--mp4", action="store_true", help="also write an .mp4 of every GIF")
    return parser


def run(args: argparse.Namespace) -> int:
    """``nin visualize``: pick the input, capture, render, and say what was written."""
    from .trained import resolve_weights
    from .weights import init_weights
    from .zoo import get_spec

    spec = get_spec(args.model)
    weights, note = (None, "") if args.seed is not None and not args.weights else resolve_weights(spec, args.weights)
    if weights is None:
        seed = args.seed or 0
        weights = init_weights(spec, seed)
        note = f"untrained: seeded initial weights (seed {seed}); pass --weights for a trained model"
    note = f"{args.backend} backend · {note}"
    x, described, class_names = _load_input(args, spec)
    logits, acts = capture(args.backend, spec, weights, x)
    paths = render(spec, x, logits, acts, args.out, class_names, mp4=args.mp4, normalize=args.normalize, note=note)
    predicted = int(np.argmax(logits[0]))
    print(f"{spec.name}, {described}")
    print(f"prediction: {_class_name(predicted, class_names)}")
    print(note)
    problem = class_map_problem(spec)
    if problem:
        print(f"no class activation maps: {problem}")
    print(f"wrote {len(paths)} files to {args.out}:")
    for path in paths:
        print(f"  {path.name}")
    return 0


def _load_input(args, spec: NiNSpec) -> tuple[np.ndarray, str, tuple[str, ...] | None]:
    """``(x (1, C, *spatial) float32, a description, class names or None)``."""
    from .data import load_dataset, resize

    if args.input:
        return _load_image(Path(args.input), spec), f"image {args.input}", None
    n = 0 if args.sample is None else args.sample
    if n < 0:
        raise InputError(f"--sample must be ≥ 0; got {n}")
    name = args.data or ("volumes" if spec.ndim == 3 else "mnist5k")
    if name == "volumes":
        if spec.ndim != 3:
            raise InputError(f"{spec.name} is 2-D but --data volumes is volumetric; use mnist5k or synthetic")
        from .volumes import load_volumes

        data = load_volumes(n_train=0, n_test=n + 1, size=spec.input_size)  # example n is the same in any size
    else:
        data = load_dataset(name)  # at its own size: only one example gets resized
    if n >= len(data.x_test):
        raise InputError(f"--sample {n} is out of range: {data.name} has {len(data.x_test)} test examples")
    x = data.x_test[n : n + 1]
    if x.ndim != spec.ndim + 2:
        raise InputError(
            f"{spec.name} is {spec.ndim}-D but {data.name} examples are {x.ndim - 2}-D "
            f"({_shape_text(x.shape[1:])}); use --data {'volumes' if spec.ndim == 3 else 'mnist5k'}"
        )
    x = _match_channels(resize(x, spec.input_size), spec, data.name)
    names = tuple(data.classes) if data.num_classes == spec.num_classes else None
    label = int(data.y_test[n])
    return x, f"test example {n} of {data.name} (label {_class_name(label, data.classes)})", names


def _match_channels(x: np.ndarray, spec: NiNSpec, source: str) -> np.ndarray:
    """Grey to RGB by repetition, RGB to grey by the mean; any other mismatch is an error."""
    c = x.shape[1]
    if c == spec.in_channels:
        return x
    if c == 1:
        return np.repeat(x, spec.in_channels, axis=1)
    if spec.in_channels == 1:
        return x.mean(axis=1, keepdims=True)
    raise InputError(f"{source} has {c} channels but {spec.name} takes {spec.in_channels}")


def _load_image(path: Path, spec: NiNSpec) -> np.ndarray:
    """A PNG/JPEG as ``(1, C, H, W)`` float32 in [0, 1] at the model's size and channels."""
    from PIL import Image, UnidentifiedImageError

    if spec.ndim != 2:
        raise InputError(f"--input takes a 2-D image but {spec.name} is volumetric; use --sample N --data volumes")
    if spec.in_channels not in (1, 3):
        raise InputError(f"--input images are grey or RGB but {spec.name} takes {spec.in_channels} channels")
    if not path.is_file():
        raise InputError(f"no image at {path}")
    try:
        with Image.open(path) as im:
            im = im.convert("L" if spec.in_channels == 1 else "RGB")
            h, w = spec.input_size
            im = im.resize((w, h), Image.Resampling.BILINEAR)
            pixels = np.asarray(im, dtype=np.float32) / 255.0
    except (UnidentifiedImageError, OSError) as e:
        raise InputError(f"cannot read {path} as an image: {e}") from None
    return (pixels[None, None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)[None]).copy()
