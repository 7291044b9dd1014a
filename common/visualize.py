"""Pictures of what a Network in Network sees: feature maps, channel animations and class
activation maps, for images (2-D) and volumes (3-D).

The rooms: ``nin.cam`` computes class activation maps (Zhou et al., CVPR 2016,
arXiv:1512.04150) from a forward pass's activations, ``nin.drawing`` draws pictures from NumPy
arrays (its docstring says how feature maps are normalised), and this module puts the pictures
of one input together and is the ``nin visualize`` command.  Capture goes through a backend's
``intermediates`` (or the NumPy oracle for ``"numpy"``); a framework is never imported here.

    logits, acts = capture("numpy", spec, weights, x)
    paths = render(spec, x, logits, acts, "out/")            # or, both at once:
    paths = visualize("torch", spec, weights, x, "out/", class_names=("zero", "one", ...))

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
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .cam import (
    ClassActivation,
    block_outputs,
    capture,
    class_activation,
    class_map_problem,
    class_maps,
)
from .drawing import (
    NORMALIZATIONS,
    cam_figure,
    cam_gif,
    cam_slices_figure,
    cam_slices_gif,
    channel_gif,
    class_name,
    feature_grid,
    gif_to_mp4,
    input_slices_gif,
    normalize_channels,
    shape_text,
    volume_slices_gif,
)
from .errors import InputError
from .extras import require_extra
from .shapes import check_input, layer_table
from .spec import NiNSpec
from .weights import Weights

__all__ = [
    "ClassActivation",
    "add_arguments",
    "block_outputs",
    "cam_figure",
    "cam_gif",
    "cam_slices_figure",
    "cam_slices_gif",
    "capture",
    "channel_gif",
    "class_activation",
    "class_map_problem",
    "class_maps",
    "feature_grid",
    "gif_to_mp4",
    "image_pixels",
    "input_slices_gif",
    "normalize_channels",
    "render",
    "run",
    "visualize",
    "volume_slices_gif",
]

HELP = "feature maps, channel animations and class activation maps of one input"


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
    _require_libraries(mp4)
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
        label = f"{spec.name} {block} ({layer}, {shape_text(shapes[layer])})"
        if spec.ndim == 2:
            paths.append(feature_grid(fmap, out / f"{block}_features.png", label, normalize, note))
            paths.append(channel_gif(fmap, out / f"{block}_channels.gif", label, image, normalize))
        else:
            mid = int(np.argmax(fmap.sum(axis=(0, 2, 3))))
            title = f"{label}, its most active depth slice ({mid} of 0–{fmap.shape[1] - 1})"
            paths.append(feature_grid(fmap[:, mid], out / f"{block}_features.png", title, normalize, note))
            paths.append(volume_slices_gif(fmap, out / f"{block}_slices.gif", label, image, normalize=normalize))
    if spec.ndim == 3:
        paths.append(input_slices_gif(image, out / "input_slices.gif", f"{spec.name} input {shape_text(image.shape)}"))
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


def _require_libraries(mp4: bool = False) -> None:
    """A one-line ``MissingExtra`` naming the extra to install unless matplotlib and Pillow (and,
    with ``mp4``, imageio-ffmpeg) can be imported: checked before any work is done."""
    require_extra("pictures", "drawing pictures")
    if mp4:
        require_extra("video", "--mp4")


def _first_example(spec: NiNSpec, x: np.ndarray) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim == spec.ndim + 1:
        x = x[None]
    return check_input(spec, x[:1])


# -- the command: nin visualize ----------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The options of ``nin visualize``; returns the parser."""
    from .files import output_folder
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
    parser.add_argument("--out", required=True, metavar="DIR", type=output_folder, help="folder for the pictures")
    parser.add_argument("--normalize", choices=NORMALIZATIONS, default="channel", help="feature-map scale")
    parser.add_argument("--mp4", action="store_true", help="also write an .mp4 of every GIF")
    return parser


def run(args: argparse.Namespace) -> int:
    """``nin visualize``: pick the input, capture, render, and say what was written."""
    from .pretrained_weights import resolve_weights
    from .weights import init_weights
    from .zoo import get_spec

    _require_libraries(args.mp4)
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
    print(f"prediction: {class_name(predicted, class_names)}")
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
    from .loaders import load_dataset, resize

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
            f"({shape_text(x.shape[1:])}); use --data {'volumes' if spec.ndim == 3 else 'mnist5k'}"
        )
    x = _match_channels(resize(x, spec.input_size), spec, data.name)
    names = tuple(data.classes) if data.num_classes == spec.num_classes else None
    label = int(data.y_test[n])
    return x, f"test example {n} of {data.name} (label {class_name(label, data.classes)})", names


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


# 16-bit greys in Pillow's modes (PNG, TIFF); "I" is how some readers hand them over
_SIXTEEN_BIT = ("I;16", "I;16L", "I;16B", "I;16N", "I")


def image_pixels(im) -> np.ndarray:
    """One Pillow image as float32 ``(C, H, W)`` in [0, 1]: grey (C = 1) or RGB (C = 3).

    The rule (docs/pictures.md): the first frame of an animation; 8-bit modes through Pillow's
    own conversion to RGB (CMYK, YCbCr, HSV, LAB, palette, bilevel) and divided by 255; 16-bit
    grey divided by 65,535 (a 32-bit integer image only where its values fit 16 bits); 32-bit
    float grey as it is where its values lie in [0, 1]; anything with transparency (RGBA, LA,
    PA, a palette with a transparent colour) composited over white, as a viewer shows it on a
    page.  A mode Pillow cannot convert to RGB is an ``InputError`` naming the mode."""
    im.seek(0)
    if im.mode in (*_SIXTEEN_BIT, "F"):
        values = np.asarray(im)
        low, high = (0.0, 65535.0) if im.mode in _SIXTEEN_BIT else (0.0, 1.0)
        if values.size and (values.min() < low or values.max() > high):
            kind = "floats" if im.mode == "F" else "integers"
            raise InputError(
                f"an {im.mode}-mode image of {kind} from {values.min()} to {values.max()}: nin visualize reads "
                f"16-bit integers (0..65535) and floats in [0, 1]; save it as an 8- or 16-bit PNG"
            )
        return (values.astype(np.float32) / np.float32(high))[None]
    try:
        if im.has_transparency_data:
            rgba = np.asarray(im.convert("RGBA"), dtype=np.float32) / 255.0
            alpha = rgba[..., 3:]
            return (rgba[..., :3] * alpha + (1.0 - alpha)).transpose(2, 0, 1)
        return (np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0).transpose(2, 0, 1)
    except ValueError as e:
        raise InputError(f"cannot convert a {im.mode}-mode image to RGB ({e}); save it as an RGB or grey PNG") from None


def _load_image(path: Path, spec: NiNSpec) -> np.ndarray:
    """A PNG/JPEG as ``(1, C, H, W)`` float32 in [0, 1] at the model's size and channels:
    ``image_pixels``, then ``nin.loaders.resize`` and ``_match_channels``, the rules of the data sets."""
    from PIL import Image, UnidentifiedImageError

    from .loaders import resize

    if spec.ndim != 2:
        raise InputError(f"--input takes a 2-D image but {spec.name} is volumetric; use --sample N --data volumes")
    if spec.in_channels not in (1, 3):
        raise InputError(f"--input images are grey or RGB but {spec.name} takes {spec.in_channels} channels")
    if not path.is_file():
        raise InputError(f"no image at {path}")
    try:
        with Image.open(path) as im:
            pixels = image_pixels(im)
    except (UnidentifiedImageError, OSError) as e:
        raise InputError(f"cannot read {path} as an image: {e}") from None
    except InputError as e:
        raise InputError(f"{path}: {e}") from None
    return _match_channels(resize(pixels[None], spec.input_size), spec, str(path))
