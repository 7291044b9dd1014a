"""Pictures: capture through the NumPy reference and every backend, class activation maps,
the PNG / GIF / MP4 files (decodable, frame counts, sizes) for 2-D and 3-D specs, and
``nin visualize`` through every backend, whose pictures match the NumPy reference's."""

from __future__ import annotations

import argparse
import contextlib
import io
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import pytest
from conftest import backend_or_skip, selected_backends
from PIL import Image

import nin
from nin import visualize as vis
from nin.conformance import FORWARD_RTOL, max_rel_error
from nin.errors import InputError, SpecError, UnknownNameError, WeightsError
from nin.spec import Linear, NiNSpec, max_pool, nin_block
from nin.volumes import make_volumes

TINY = nin.get_spec("nin_tiny")  # 3×16×16 → blocks of 6×16×16, 12×8×8, 10×5×5
VOLUME = nin.get_spec("nin3d", input_size=12)  # 1×12³ → blocks of 16×12³, 32×6³, 10×3³
NAMES = [f"c{k}" for k in range(10)]

# A picture through a backend may differ from the NumPy reference's in this share of a frame's
# pixels at the most: a value that lands on a colour-table step can round either way.
PIXEL_SHARE = 0.01


def _image(spec: NiNSpec, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((1, spec.in_channels, *spec.input_size)).astype(np.float32)


def _kaiming_run(spec: NiNSpec, seed: int) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """``(x, logits, acts)`` of a random input through the NumPy reference, Kaiming weights."""
    x = _image(spec, seed)
    return x, *vis.capture("numpy", spec, nin.init_weights(spec, seed, "kaiming"), x)


def _frames(path) -> list[np.ndarray]:
    """Every frame of a GIF or PNG as RGB ``(h, w, 3)`` uint8, read back with Pillow."""
    with Image.open(path) as im:
        frames = []
        for i in range(getattr(im, "n_frames", 1)):
            im.seek(i)
            frames.append(np.asarray(im.convert("RGB")))
        return frames


def _gif(path) -> tuple[int, set[tuple[int, int]]]:
    """Frame count and the set of frame sizes ``(width, height)`` of a GIF."""
    with Image.open(path) as im:
        assert im.format == "GIF", f"{path.name}: got {im.format}, but should be GIF"
    frames = _frames(path)
    return len(frames), {(f.shape[1], f.shape[0]) for f in frames}


def _mp4(path) -> np.ndarray:
    """Every frame of an MP4 ``(n, h, w, 3)``, decoded by imageio-ffmpeg's ffmpeg."""
    reader = imageio_ffmpeg.read_frames(str(path), pix_fmt="rgb24")
    w, h = next(reader)["size"]
    return np.stack([np.frombuffer(frame, np.uint8).reshape(h, w, 3) for frame in reader])


def _blocks(spec: NiNSpec) -> dict[str, tuple[int, ...]]:
    shapes = nin.output_shapes(spec)
    return {block: shapes[layer] for block, layer in vis.block_outputs(spec).items()}


def _names_2d(spec: NiNSpec) -> list[str]:
    """The files ``render`` writes for a 2-D spec with class maps, ``mp4=True``, in order."""
    pictures = [n for b in _blocks(spec) for n in (f"{b}_features.png", f"{b}_channels.gif")]
    pictures += ["cam.png", "cam_classes.gif"]
    return pictures + [n.replace(".gif", ".mp4") for n in pictures if n.endswith(".gif")]


def _skip_if_missing(backend: str) -> None:
    """Skip, naming what is missing, when a framework backend is not installed."""
    if backend != "numpy":
        backend_or_skip(backend)


def _capture(backend: str, spec: NiNSpec, x: np.ndarray):
    """``vis.capture`` with the seed-0 weights."""
    _skip_if_missing(backend)
    return vis.capture(backend, spec, nin.init_weights(spec, 0), x)


@pytest.fixture(scope="module")
def tiny_run():
    x = _image(TINY)
    return x, *_capture("numpy", TINY, x)


@pytest.fixture(scope="module")
def tiny_files(tmp_path_factory, tiny_run):
    x, logits, acts = tiny_run
    out = tmp_path_factory.mktemp("tiny")
    return out, vis.render(TINY, x, logits, acts, out, class_names=NAMES, mp4=True)


@pytest.fixture(scope="module", params=["numpy", *selected_backends()])
def cli_files(request, tmp_path_factory):
    """``nin visualize --backend B --model nin_tiny --sample 3 --mp4`` (seeded weights): the
    backend, the folder and what the command printed; once per backend."""
    backend = request.param
    _skip_if_missing(backend)
    out = tmp_path_factory.mktemp(f"cli_{backend}")
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert _run("--backend", backend, "--model", "nin_tiny", "--sample", "3", "--out", str(out), "--mp4") == 0
    return backend, out, printed.getvalue()


@pytest.fixture(scope="module")
def volume_files(tmp_path_factory):
    x, _ = make_volumes(1, size=12, seed=0)
    out = tmp_path_factory.mktemp("volume")
    return out, vis.visualize("numpy", VOLUME, nin.init_weights(VOLUME, 0), x[0], out)


# -- capture and class maps ------------------------------------------------------------------


def _block0_by_hand(weights: dict[str, np.ndarray], x: np.ndarray) -> dict[str, np.ndarray]:
    """nin_tiny's first block and pool for one example ``(3, 16, 16)``, written out from the
    definitions with explicit sums (no ``nin.reference`` code): a 3×3 convolution padded by 1
    as nine shifted products, two 1×1 convolutions as matrix products, ReLU after each, then
    a 3×3 stride-2 max pool in ceil mode whose last window hangs past the edge (rows 14–15)."""
    out = {}
    padded = np.pad(x.astype(np.float64), ((0, 0), (1, 1), (1, 1)))
    w, b = weights["block0.conv0.weight"].astype(np.float64), weights["block0.conv0.bias"]
    a = sum(
        np.einsum("oc,chw->ohw", w[:, :, i, j], padded[:, i : i + 16, j : j + 16]) for i in range(3) for j in range(3)
    )
    out["block0.conv0"] = a = np.maximum(a + b[:, None, None], 0)
    for c in (1, 2):
        w, b = weights[f"block0.conv{c}.weight"][:, :, 0, 0], weights[f"block0.conv{c}.bias"]
        out[f"block0.conv{c}"] = a = np.maximum(np.einsum("oc,chw->ohw", w, a) + b[:, None, None], 0)
    pooled = np.empty((a.shape[0], 8, 8))
    for i in range(8):
        for j in range(8):
            pooled[:, i, j] = a[:, 2 * i : 2 * i + 3, 2 * j : 2 * j + 3].max(axis=(1, 2))
    out["pool0"] = pooled
    return out


def test_capture_numpy_matches_hand_computed_layers(tiny_run):
    """``capture("numpy")`` against values computed here, not by the oracle it wraps: the first
    block and pool by hand, every layer's shape from ``nin.output_shapes`` (which shares no code
    with the oracle), and the logits as the global average of the last block — NiN's head."""
    x, logits, acts = tiny_run
    assert logits.dtype == np.float32 and logits.shape == (1, 10)
    shapes = nin.output_shapes(TINY)
    assert list(acts) == list(shapes)
    for name, a in acts.items():
        assert a.dtype == np.float32 and a.shape == (1, *shapes[name]), f"{name}: {a.shape}"
    for name, want in _block0_by_hand(nin.init_weights(TINY, 0), x[0]).items():
        err = max_rel_error(acts[name][0], want)
        assert err <= 1e-6, f"{name}: max|Δ| = {err:.1e}·max|hand-computed|"
    np.testing.assert_allclose(logits[0], acts["block2.conv2"][0].mean(axis=(1, 2)), rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(acts["gap"], logits)


def test_capture_unknown_backend():
    with pytest.raises(UnknownNameError, match="unknown backend 'nope'"):
        vis.capture("nope", TINY, nin.init_weights(TINY), _image(TINY))


def test_block_outputs():
    assert vis.block_outputs(TINY) == {"block0": "block0.conv2", "block1": "block1.conv2", "block2": "block2.conv2"}


@pytest.mark.parametrize("spec", [TINY, VOLUME], ids=lambda s: s.name)
def test_class_maps_average_to_the_logits(spec):
    """NiN's last block is its class activation maps: global average pooling gives the scores."""
    _, logits, acts = _kaiming_run(spec, 1)
    maps = vis.class_maps(spec, acts)
    assert maps.shape[:2] == (1, spec.num_classes)
    np.testing.assert_allclose(maps.mean(axis=tuple(range(2, maps.ndim))), logits, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("spec", [TINY, VOLUME], ids=lambda s: s.name)
def test_class_activation_has_the_input_size_and_predicts_the_argmax(spec):
    x, logits, acts = _kaiming_run(spec, 2)
    cam = vis.class_activation(spec, x, logits, acts)
    assert cam.maps.shape == (spec.num_classes, *spec.input_size)
    assert cam.predicted == int(np.argmax(logits[0]))
    assert cam.ranked(1) == [cam.predicted]
    assert cam.probabilities.sum() == pytest.approx(1.0)


def test_fully_connected_head_has_no_class_maps(tmp_path):
    problem = vis.class_map_problem(nin.get_spec("nin_d2l_fc"))
    assert "fully connected head" in problem
    fc = NiNSpec("fc_small", 1, (8, 8), 3, (nin_block(4, 3, 1, 1), max_pool(2, 2), Linear(3)))
    x = _image(fc)
    logits, acts = vis.capture("numpy", fc, nin.init_weights(fc), x)
    with pytest.raises(SpecError, match="fc_small ends in a fully connected head"):
        vis.class_maps(fc, acts)
    paths = vis.render(fc, x, logits, acts, tmp_path)
    assert [p.name for p in paths] == ["block0_features.png", "block0_channels.gif"]


def test_normalisations():
    fmap = np.stack([np.arange(4.0).reshape(2, 2), 10 + np.arange(4.0).reshape(2, 2), np.zeros((2, 2))])
    per_channel = vis.normalize_channels(fmap, "channel")
    np.testing.assert_allclose(per_channel[0], per_channel[1])
    np.testing.assert_array_equal(per_channel[2], 0)  # a constant channel is drawn dark
    shared = vis.normalize_channels(fmap, "shared")
    assert shared.max() == 1.0 and shared[1].min() > shared[0].max()
    with pytest.raises(UnknownNameError, match="known: channel, shared"):
        vis.normalize_channels(fmap, "global")


# -- the files -------------------------------------------------------------------------------


def test_2d_files(tiny_files):
    out, paths = tiny_files
    assert [p.name for p in paths] == _names_2d(TINY)
    assert all(p.parent == out and p.stat().st_size > 0 for p in paths)


def test_cli_writes_every_file(cli_files):
    """``nin visualize`` through each backend says what it wrote, and it is all there."""
    backend, out, printed = cli_files
    names = _names_2d(TINY)
    assert f"{backend} backend · untrained" in printed
    assert printed.splitlines()[-len(names) :] == [f"  {n}" for n in names]
    assert sorted(p.name for p in out.iterdir()) == sorted(names)
    for name in names:
        if name.endswith(".png"):
            (image,) = _frames(out / name)
            assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100, f"{backend} {name}: {image.shape}"


def test_channel_gifs_have_a_frame_per_channel(cli_files):
    backend, out, _ = cli_files
    for block, shape in _blocks(TINY).items():
        frames, sizes = _gif(out / f"{block}_channels.gif")
        assert frames == shape[0], f"{backend} {block}: got {frames} frames, but should be {shape[0]} (its channels)"
        assert len(sizes) == 1, f"{backend} {block}: frames of sizes {sizes}"


def test_class_gif_has_a_frame_per_class(cli_files):
    backend, out, _ = cli_files
    frames, sizes = _gif(out / "cam_classes.gif")
    assert frames == TINY.num_classes and len(sizes) == 1, f"{backend}: {frames} frames of sizes {sizes}"


def test_mp4s_have_every_gif_frame(cli_files):
    """Each MP4 decodes (imageio-ffmpeg) to its GIF's frames, padded to even sizes."""
    backend, out, _ = cli_files
    for gif in sorted(out.glob("*.gif")):
        count, ((w, h),) = _gif(gif)
        movie = _mp4(gif.with_suffix(".mp4"))
        assert movie.shape == (count, h + h % 2, w + w % 2, 3), (
            f"{backend} {gif.stem}.mp4: got {movie.shape}, but should be {(count, h + h % 2, w + w % 2, 3)}"
        )


@pytest.mark.parametrize("backend", selected_backends())
def test_backend_pictures_match_numpy(backend, tiny_run, tiny_files, tmp_path):
    """The same input through a backend gives NumPy's arrays (within the conformance
    tolerance) and, drawn, the same pictures: frame for frame, pixel for pixel but for a few."""
    x, want_logits, want_acts = tiny_run
    logits, acts = _capture(backend, TINY, x)
    got_arrays = {"logits": logits, **acts}
    for name, want in {"logits": want_logits, **want_acts}.items():
        err = max_rel_error(got_arrays[name], want)
        assert err <= FORWARD_RTOL, (
            f"{backend} {name}: got max|Δ| = {err:.2e}·max|ref|, but should be ≤ {FORWARD_RTOL:.0e}"
        )
    want_dir, _ = tiny_files
    for path in vis.render(TINY, x, logits, acts, tmp_path, class_names=NAMES):
        got, want = _frames(path), _frames(want_dir / path.name)
        assert len(got) == len(want), f"{backend} {path.name}: got {len(got)} frames, but should be {len(want)}"
        for i, (a, b) in enumerate(zip(got, want, strict=True)):
            assert a.shape == b.shape, f"{backend} {path.name} frame {i}: got {a.shape}, but should be {b.shape}"
            share = float(np.any(a != b, axis=-1).mean())
            assert share <= PIXEL_SHARE, (
                f"{backend} {path.name} frame {i}: got {share:.2%} of pixels unlike NumPy's, "
                f"but should be ≤ {PIXEL_SHARE:.0%}"
            )


def test_gif_to_mp4_pads_odd_sizes(tmp_path):
    frames = [Image.new("RGB", (33, 21), (40 * i, 90, 200)) for i in range(5)]
    frames[0].save(tmp_path / "odd.gif", save_all=True, append_images=frames[1:], duration=100, loop=0)
    mp4 = vis.gif_to_mp4(tmp_path / "odd.gif", tmp_path / "odd.mp4", fps=5)
    assert _mp4(mp4).shape == (5, 22, 34, 3)
    with pytest.raises(InputError, match="no GIF at"):
        vis.gif_to_mp4(tmp_path / "missing.gif", tmp_path / "x.mp4")


def test_3d_files_step_through_depth(volume_files):
    out, paths = volume_files
    blocks = _blocks(VOLUME)
    expected = [n for b in blocks for n in (f"{b}_features.png", f"{b}_slices.gif")]
    assert [p.name for p in paths] == [*expected, "input_slices.gif", "cam_slices.png", "cam_slices.gif"]
    depth = VOLUME.input_size[0]
    assert _gif(out / "input_slices.gif")[0] == depth
    assert _gif(out / "cam_slices.gif")[0] == depth
    for block, shape in blocks.items():
        assert _gif(out / f"{block}_slices.gif")[0] == shape[1], f"{block}: one frame per depth slice"
    (image,) = _frames(out / "cam_slices.png")
    assert image.shape[0] > 100 and image.shape[1] > 100, image.shape


# A provenance line as long as a real one and longer: words, a path too wide for any figure,
# and a dollar sign (which matplotlib would otherwise read as the start of a formula).
LONG_NOTE = (
    "numpy backend · pretrained weights: runs/" + "a_very_long_folder_name/" * 8 + "nin_mnist.safetensors "
    "(test accuracy 98.00% on mnist5k; made by: OMP_NUM_THREADS=1 nin train --backend torch --model nin_mnist "
    "--data mnist5k --out $HOME/runs/nin_mnist --no-progress --seed 0 --epochs 10 --batch-size 8)"
)


# class names as long as ImageNet's
LONG_NAMES = [f"great grey owl, great gray owl, Strix nebulosa ({k})" for k in range(10)]


def _figures(tmp_path, monkeypatch) -> dict:
    """Every kind of PNG figure, 2-D and 3-D, with ``LONG_NOTE`` and ``LONG_NAMES``: {file
    name: Figure}, drawn."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from nin import drawing

    figures = {}

    def keep(fig, path, *args):
        figures[Path(path).name] = fig
        return Path(path)

    monkeypatch.setattr(drawing, "_save_figure", keep)
    x, logits, acts = _kaiming_run(TINY, 0)
    activation = vis.class_activation(TINY, x, logits, acts)
    for block, layer in vis.block_outputs(TINY).items():
        vis.feature_grid(acts[layer][0], tmp_path / f"{block}_features.png", f"nin_tiny {block}", note=LONG_NOTE)
    vis.cam_figure(x[0], activation, tmp_path / "cam.png", "nin_tiny", LONG_NAMES, note=LONG_NOTE)
    x, logits, acts = _kaiming_run(VOLUME, 0)
    activation = vis.class_activation(VOLUME, x, logits, acts)
    vis.feature_grid(acts["block0.conv2"][0][:, 3], tmp_path / "volume_features.png", "nin3d block0", note=LONG_NOTE)
    vis.cam_slices_figure(x[0], activation, tmp_path / "cam_slices.png", "nin3d", LONG_NAMES, note=LONG_NOTE)
    for fig in figures.values():
        FigureCanvasAgg(fig).draw()  # what savefig draws (on white), kept: its renderer and its pixels
    return figures


def test_figure_text_fits_inside(tmp_path, monkeypatch):
    """Everything a figure draws lies inside it (``Figure.get_tightbbox`` on the Agg renderer,
    ticks and labels included), the long provenance line is all there in the header (wrapped,
    not cut), and no ink touches the right edge of the drawn pixels (independently of
    matplotlib's text measurement)."""
    figures = _figures(tmp_path, monkeypatch)
    assert len(figures) == 6
    for name, fig in figures.items():
        renderer = fig.canvas.get_renderer()
        width, height = fig.get_size_inches()
        box = fig.get_tightbbox(renderer)
        assert box.x0 >= 0 and box.y0 >= 0 and box.x1 <= width and box.y1 <= height, (
            f"{name}: what it draws spans x {box.x0:.2f}–{box.x1:.2f}, y {box.y0:.2f}–{box.y1:.2f} in, "
            f"in a figure of {width:.2f}×{height:.2f} in"
        )
        header = [*fig.texts, *([fig._suptitle] if fig._suptitle else [])]
        printed = "".join(t.get_text() for t in header).replace("\n", "").replace(" ", "")
        assert LONG_NOTE.replace(" ", "") in printed, f"{name}: the provenance line is not all there"
        edge = np.asarray(fig.canvas.buffer_rgba())[:, -4:, :3]
        assert (edge > 200).all(), (
            f"{name}: ink in the last 4 columns, rows {np.flatnonzero((edge <= 200).any(axis=(1, 2)))[:5]}"
        )


def test_gif_frames_fit_their_text(tmp_path):
    """A GIF frame is as wide as its header and captions need — a class name as long as
    ImageNet's under the last panel, a header of wide capitals: no ink in its right margin."""
    x, logits, acts = _kaiming_run(TINY, 0)
    activation = vis.class_activation(TINY, x, logits, acts)
    fmap = acts["block0.conv2"][0, :2]
    paths = [
        vis.cam_gif(x[0], activation, tmp_path / "cam.gif", "nin_tiny", LONG_NAMES),
        vis.channel_gif(fmap, tmp_path / "channels.gif", "WIDE CAPITALS IN A LABEL: MMMMMMMMMMWWWWWWWWWW", x[0]),
    ]
    for path in paths:
        for i, frame in enumerate(_frames(path)):
            assert (frame[:, -4:] > 200).all(), f"{path.name} frame {i}: ink in the last 4 columns"


def test_class_names_must_match(tiny_run, tmp_path):
    x, logits, acts = tiny_run
    with pytest.raises(InputError, match="10 classes but 2 class names"):
        vis.render(TINY, x, logits, acts, tmp_path, class_names=["a", "b"])


# -- nin visualize ---------------------------------------------------------------------------


def _run(*argv: str) -> int:
    args = vis.add_arguments(argparse.ArgumentParser()).parse_args(list(argv))
    return vis.run(args)


@pytest.fixture
def picture(tmp_path):
    path = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (30, 45, 3), dtype=np.uint8)).save(path)
    return path


def test_cli_image_with_seeded_init(picture, tmp_path, capsys):
    out = tmp_path / "pictures"
    assert _run("--model", "nin_tiny", "--input", str(picture), "--out", str(out)) == 0
    printed = capsys.readouterr().out
    assert "untrained: seeded initial weights (seed 0)" in printed
    assert "prediction: class" in printed
    assert (out / "cam.png").is_file() and (out / "block2_channels.gif").is_file()
    assert _gif(out / "block0_channels.gif")[0] == 6


# Images in every mode ``nin visualize --input`` takes, 16×16 like nin_tiny (so nothing is
# resized), each with the model input the rule in docs/pictures.md gives, computed here by hand:
# /255 or /65535, alpha over white, grey repeated to RGB.
_RNG = np.random.default_rng(7)
_RGB8 = _RNG.integers(0, 256, (16, 16, 3), dtype=np.uint8)
_GREY8 = _RNG.integers(0, 256, (16, 16), dtype=np.uint8)
_ALPHA8 = _RNG.integers(0, 256, (16, 16), dtype=np.uint8)
_GREY16 = (np.arange(256, dtype=np.uint16) * 37).reshape(16, 16)  # 0..9435 of 65535: a dark gradient
_INDEX = _RNG.integers(0, 3, (16, 16), dtype=np.uint8)
_PALETTE = np.array([[10, 20, 30], [200, 100, 50], [0, 255, 0]], np.uint8)
_CMYK = np.array([[0, 255, 255, 0], [255, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 255]], np.uint8)  # red cyan white black
_CMYK_AS_RGB = np.array([[255, 0, 0], [0, 255, 255], [255, 255, 255], [0, 0, 0]], np.uint8)
_FOUR = np.arange(256).reshape(16, 16) % 4


def _over_white(colour: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    a = alpha[..., None] / 255.0
    return colour / 255.0 * a + (1 - a)


def _palette_image(transparent: bool):
    im = Image.fromarray(_INDEX, "P")
    im.putpalette(_PALETTE.ravel().tolist())
    if transparent:
        im.info["transparency"] = 0
    return im


def _rgb(pixels: np.ndarray) -> np.ndarray:
    """(16, 16) grey or (16, 16, 3) colour in [0, 1] as nin_tiny's input (1, 3, 16, 16)."""
    pixels = np.repeat(pixels[..., None], 3, axis=-1) if pixels.ndim == 2 else pixels
    return pixels.transpose(2, 0, 1)[None]


IMAGE_MODES = {
    "RGB": (lambda: Image.fromarray(_RGB8, "RGB"), "png", lambda: _rgb(_RGB8 / 255.0)),
    "L": (lambda: Image.fromarray(_GREY8, "L"), "png", lambda: _rgb(_GREY8 / 255.0)),
    "16-bit grey": (lambda: Image.fromarray(_GREY16), "png", lambda: _rgb(_GREY16 / 65535.0)),
    "RGBA": (
        lambda: Image.fromarray(np.dstack([_RGB8, _ALPHA8]), "RGBA"),
        "png",
        lambda: _rgb(_over_white(_RGB8, _ALPHA8)),
    ),
    "LA": (
        lambda: Image.fromarray(np.dstack([_GREY8, _ALPHA8]), "LA"),
        "png",
        lambda: _rgb(_over_white(_GREY8[..., None], _ALPHA8)[..., 0]),
    ),
    "palette": (lambda: _palette_image(False), "png", lambda: _rgb(_PALETTE[_INDEX] / 255.0)),
    "palette, colour 0 transparent": (
        lambda: _palette_image(True),
        "png",
        lambda: _rgb(np.where((_INDEX == 0)[..., None], 1.0, _PALETTE[_INDEX] / 255.0)),
    ),
    "CMYK": (
        lambda: Image.fromarray(_CMYK[_FOUR], "CMYK"),
        "tif",
        lambda: _rgb(_CMYK_AS_RGB[_FOUR] / 255.0),
    ),
    "bilevel": (lambda: Image.fromarray(_GREY8 > 127).convert("1"), "png", lambda: _rgb((_GREY8 > 127) * 1.0)),
    "32-bit float grey in [0, 1]": (
        lambda: Image.fromarray((_GREY8 / 255.0).astype(np.float32), "F"),
        "tif",
        lambda: _rgb(_GREY8 / 255.0),
    ),
}


@pytest.mark.parametrize("mode", list(IMAGE_MODES))
def test_image_modes_follow_the_documented_rule(mode, tmp_path):
    """``--input`` in each mode gives the model the input the rule says (docs/pictures.md);
    a 16-bit PNG once came out 99 % white (clipped at 255 of 65,535)."""
    make, suffix, want = IMAGE_MODES[mode]
    path = tmp_path / f"image.{suffix}"
    make().save(path)
    got = vis._load_image(path, TINY)
    assert got.shape == (1, 3, 16, 16) and got.dtype == np.float32
    np.testing.assert_allclose(got, want(), atol=1e-6, err_msg=mode)


def test_colour_image_to_a_grey_model_is_the_channel_mean(tmp_path):
    """nin_mnist takes one channel: an RGBA image is put over white, then averaged over R, G, B
    (the rule the data sets use, ``_match_channels``)."""
    rgba = np.dstack([_RNG.integers(0, 256, (28, 28, 3)), _RNG.integers(0, 256, (28, 28))]).astype(np.uint8)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "image.png")
    got = vis._load_image(tmp_path / "image.png", nin.get_spec("nin_mnist"))
    want = _over_white(rgba[..., :3], rgba[..., 3]).mean(axis=-1)[None, None]
    np.testing.assert_allclose(got, want, atol=1e-6)


def test_cli_weights_file(picture, tmp_path, capsys):
    weights = nin.save_weights(nin.init_weights(TINY, 5), tmp_path / "tiny.npz")
    assert _run("--model", "nin_tiny", "--input", str(picture), "--weights", str(weights), "--out", str(tmp_path)) == 0
    assert f"weights: {weights}" in capsys.readouterr().out


def test_cli_volume_sample_with_mp4(tmp_path, capsys):
    out = tmp_path / "vol"
    assert _run("--model", "nin3d", "--sample", "3", "--out", str(out), "--mp4") == 0
    printed = capsys.readouterr().out
    assert "test example 3 of volumes" in printed
    assert _gif(out / "input_slices.gif")[0] == 32
    assert len(_mp4(out / "input_slices.mp4")) == 32


def test_cli_2d_sample_of_mnist5k(tmp_path, capsys):
    """A real digit, resized to the model's 16×16 and repeated to its three channels."""
    assert _run("--model", "nin_tiny", "--sample", "3", "--out", str(tmp_path)) == 0
    printed = capsys.readouterr().out
    assert "test example 3 of mnist5k (label 3)" in printed
    assert (tmp_path / "cam_classes.gif").is_file()


@pytest.mark.parametrize(
    "argv, error, match",
    [
        (["--model", "nin_tiny", "--input", "missing.png"], InputError, "no image at missing.png"),
        (["--model", "nin_nope", "--sample", "0"], UnknownNameError, "unknown model 'nin_nope'"),
        (["--model", "nin3d", "--input", "x.png"], InputError, "nin3d is volumetric"),
        (["--model", "nin_tiny", "--data", "volumes"], InputError, "nin_tiny is 2-D"),
        (["--model", "nin3d", "--sample", "-1"], InputError, "--sample must be ≥ 0"),
        (["--model", "nin_tiny", "--sample", "1000"], InputError, "out of range: mnist5k has 1000 test examples"),
        (["--model", "nin3d", "--data", "synthetic"], InputError, "nin3d is 3-D but synthetic examples are 2-D"),
        (["--model", "nin_tiny", "--data", "imagenet"], UnknownNameError, "unknown dataset 'imagenet'"),
    ],
)
def test_cli_errors_are_clear(argv, error, match, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(error, match=match):
        _run(*argv, "--out", str(tmp_path))


def test_cli_weights_that_do_not_fit(picture, tmp_path):
    wrong = nin.save_weights(nin.init_weights(nin.get_spec("nin_tiny", num_classes=4)), tmp_path / "four.npz")
    with pytest.raises(WeightsError, match="weights do not fit nin_tiny"):
        _run("--model", "nin_tiny", "--input", str(picture), "--weights", str(wrong), "--out", str(tmp_path))


def test_cli_file_that_is_not_an_image(tmp_path):
    bad = tmp_path / "notes.png"
    bad.write_text("not an image")
    with pytest.raises(InputError, match="cannot read"):
        _run("--model", "nin_tiny", "--input", str(bad), "--out", str(tmp_path))
