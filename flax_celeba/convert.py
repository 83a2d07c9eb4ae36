"""Weights: diffusers ``UNet2DModel`` state dicts <-> flax_celeba parameter trees.

**Mapping rule.** A flax parameter path ``('down_blocks_0', 'resnets_1', 'conv1', 'kernel')`` is the
PyTorch key ``down_blocks.0.resnets.1.conv1.weight``: a path component ``NAME_i`` whose ``NAME`` is
a ``torch.nn.ModuleList`` of diffusers (``LIST_NAMES``) becomes ``NAME.i``; leaves
``kernel``/``scale`` are ``weight``. Conv kernels are transposed
``(O, I, kh, kw) -> (kh, kw, I, O)``, dense kernels ``(O, I) -> (I, O)``. Legacy attention names
(``query``, ``key``, ``value``, ``proj_attn``) and the Fourier projection's ``W`` are accepted as
diffusers' loader accepts them.

**Converted folder format** (``FORMAT``), written by :func:`save_converted`:

- ``flax_params.safetensors``: one float32 tensor per parameter, keyed by the flax path joined
  with ``/`` (e.g. ``down_blocks_0/resnets_1/conv1/kernel``), flax layouts;
- ``config.json``: the diffusers ``UNet2DModel`` config (unchanged keys);
- ``flax_celeba.json``: ``{"format": "flax_celeba/1", "source": ..., "num_params": ...}``;
- ``scheduler_config.json``: copied from the source pipeline when it has one.

Reading safetensors never imports torch; a ``.bin`` source needs torch installed.

**Damage is reported, not propagated.** Every way a folder can be broken raises a
:class:`~flax_celeba.config.CheckpointError` (a ``ValueError``; ``MissingFileError`` is also a
``FileNotFoundError``) whose message starts with the offending file and names the tensor or field
with what was expected and what was found; ``err.case`` tags the kind: a missing file
(``missing-file``), unreadable JSON (``unreadable-json``), another format version
(``format-version``), a bad config value (``invalid-config``, ``unsupported-option``), missing,
extra or mis-shaped tensors (``tensor-mismatch``, :class:`ConversionError`), a truncated or foreign
weights file (``corrupt-file``), integer weights (``bad-dtype``), NaN or inf weights
(``non-finite``).
"""

from __future__ import annotations

import functools
import json
import re
import shutil
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .config import (
    CheckpointError,
    InvalidConfig,
    MissingFileError,
    UNetConfig,
    find_model_folder,
    load_config,
    read_json,
)

__all__ = [
    "FORMAT",
    "CheckpointError",
    "ConversionError",
    "read_safetensors",
    "check_weights",
    "flax_path_to_torch_key",
    "read_torch_state_dict",
    "torch_to_flax",
    "flax_to_torch",
    "save_converted",
    "load_params",
    "convert",
    "scheduler_config_path",
]

FORMAT = "flax_celeba/1"
PARAMS_FILE = "flax_params.safetensors"
META_FILE = "flax_celeba.json"
LIST_NAMES = (
    "down_blocks",
    "up_blocks",
    "resnets",
    "attentions",
    "downsamplers",
    "upsamplers",
    "to_out",
)
_LIST_RE = re.compile(rf"^({'|'.join(LIST_NAMES)})_(\d+)$")
_LEGACY = {"query": "to_q", "key": "to_k", "value": "to_v", "proj_attn": "to_out.0"}


class ConversionError(CheckpointError):
    """Missing, unexpected or mis-shaped tensors, listed by name in the message and in the
    ``missing``, ``unexpected`` and ``misshaped`` attributes (lists of tensor names)."""

    default_case = "tensor-mismatch"

    def __init__(
        self,
        message: str,
        *,
        file: str | Path | None = None,
        case: str | None = None,
        missing: list[str] | None = None,
        unexpected: list[str] | None = None,
        misshaped: list[str] | None = None,
    ) -> None:
        super().__init__(message, file=file, case=case)
        self.missing = list(missing or [])
        self.unexpected = list(unexpected or [])
        self.misshaped = list(misshaped or [])


_MAX_LISTED = 20  # names listed per kind of problem in a message


def _listing(items: list[str]) -> str:
    shown = "\n    ".join(items[:_MAX_LISTED])
    more = f"\n    ... and {len(items) - _MAX_LISTED} more" if len(items) > _MAX_LISTED else ""
    return f"\n    {shown}{more}"


def _mismatch_error(
    source: str,
    missing: list[tuple[str, tuple[int, ...]]],
    unexpected: list[tuple[str, tuple[int, ...]]],
    misshaped: list[tuple[str, tuple[int, ...], tuple[int, ...]]],
    file: Path | None = None,
) -> ConversionError:
    """One error listing every missing, unexpected and mis-shaped tensor with its shapes."""
    lines = [f"{source} does not match its config:"]
    if missing:
        lines.append(
            f"  missing tensors ({len(missing)}):"
            + _listing([f"{k} (expected shape {s})" for k, s in missing])
        )
    if unexpected:
        lines.append(
            f"  unexpected tensors ({len(unexpected)}):"
            + _listing([f"{k} (found shape {s})" for k, s in unexpected])
        )
    if misshaped:
        lines.append(
            f"  mis-shaped tensors ({len(misshaped)}):"
            + _listing([f"{k}: found {got}, expected {want}" for k, got, want in misshaped])
        )
    return ConversionError(
        "\n".join(lines),
        file=file,
        missing=[k for k, _ in missing],
        unexpected=[k for k, _ in unexpected],
        misshaped=[k for k, _, _ in misshaped],
    )


def _safetensors_header(path: Path) -> dict[str, Any]:
    """The JSON header of a safetensors file; ``CheckpointError`` saying what is structurally
    wrong (too short, header past the end, not JSON, tensors past the end, stray bytes)."""

    def fail(problem: str) -> CheckpointError:
        return CheckpointError(
            f"{path}: not a readable safetensors file: {problem}", file=path, case="corrupt-file"
        )

    size = path.stat().st_size
    with open(path, "rb") as handle:
        head = handle.read(8)
        if len(head) < 8:
            raise fail(f"{size} bytes, less than the 8-byte header length (empty or truncated)")
        (length,) = struct.unpack("<Q", head)
        if 8 + length > size:
            raise fail(
                f"the header claims {length} bytes but the file has {size} bytes in all "
                "(truncated, or not a safetensors file)"
            )
        raw = handle.read(length)
    try:
        header = json.loads(raw)
        if not isinstance(header, dict):
            raise ValueError("not an object")
    except ValueError as err:
        raise fail(f"its {length}-byte header is not a JSON object ({err})") from err
    tensors = {k: v for k, v in header.items() if k != "__metadata__"}
    try:
        ends = {k: int(v["data_offsets"][1]) for k, v in tensors.items()}
    except (TypeError, KeyError, IndexError, ValueError) as err:
        raise fail(f"a header entry has no valid data_offsets ({err})") from err
    needed = 8 + length + max(ends.values(), default=0)
    if needed > size:
        cut = sorted(k for k, end in ends.items() if 8 + length + end > size)
        raise fail(
            f"truncated: its tensors need {needed} bytes, the file has {size}; "
            f"{len(cut)} of {len(tensors)} tensors lie (partly) past the end, e.g. {cut[0]!r}"
        )
    if needed < size:
        raise fail(f"{size - needed} stray bytes after the last tensor (expected {needed} bytes)")
    return header


def read_safetensors(path: str | Path) -> dict[str, np.ndarray]:
    """All tensors of a safetensors file as numpy arrays (no torch).

    A truncated, padded or foreign file raises ``CheckpointError`` (case ``corrupt-file``)
    naming the file and what is wrong with it (e.g. which tensors lie past its end). BF16
    tensors come back as ``ml_dtypes.bfloat16`` arrays (jax registers that dtype).
    """
    from safetensors.numpy import load_file

    path = Path(path)
    try:
        return load_file(str(path))
    except Exception as err:  # SafetensorError says little: diagnose the structure ourselves
        _safetensors_header(path)
        raise CheckpointError(
            f"{path}: not a readable safetensors file ({type(err).__name__}: {err})",
            file=path,
            case="corrupt-file",
        ) from err


def _is_float(value: Any) -> bool:
    """numpy floats, and ml_dtypes' (``bfloat16``, ``float8_*``: kind ``V``, named ``*float*``)."""
    dtype = np.asarray(value).dtype
    return dtype.kind == "f" or "float" in dtype.name


def check_weights(tensors: Mapping[str, np.ndarray], file: str | Path) -> None:
    """Every tensor is floating point and finite; else ``CheckpointError`` naming the file and
    the offending tensors (case ``bad-dtype`` or ``non-finite``, with NaN/inf counts)."""
    bad_dtype = sorted(
        f"{k}: dtype {np.asarray(v).dtype}" for k, v in tensors.items() if not _is_float(v)
    )
    if bad_dtype:
        raise CheckpointError(
            f"{file}: {len(bad_dtype)} tensors are not floating point (weights must be):"
            + _listing(bad_dtype),
            file=file,
            case="bad-dtype",
        )
    bad = []
    for key in sorted(tensors):
        value = np.asarray(tensors[key], np.float32)
        finite = np.isfinite(value)
        if not finite.all():
            nan = int(np.isnan(value).sum())
            inf = int(value.size - finite.sum()) - nan
            bad.append(f"{key}: {nan} NaN and {inf} inf of {value.size} values {value.shape}")
    if bad:
        raise CheckpointError(
            f"{file}: non-finite weights in {len(bad)} tensors (a damaged or diverged "
            "checkpoint):" + _listing(bad),
            file=file,
            case="non-finite",
        )


def flax_path_to_torch_key(path: tuple[str, ...]) -> str:
    """The diffusers state-dict key of a flax parameter path (module rule above)."""
    parts = []
    for component in path[:-1]:
        match = _LIST_RE.match(component)
        parts.append(f"{match[1]}.{match[2]}" if match else component)
    leaf = {"kernel": "weight", "scale": "weight"}.get(path[-1], path[-1])
    return ".".join([*parts, leaf])


def _canonical_key(key: str) -> str:
    """Map legacy diffusers names onto current ones (as ``_fix_state_dict_keys_on_load`` does)."""
    head, _, leaf = key.rpartition(".")
    module_path, _, module = head.rpartition(".")
    if module in _LEGACY and ".attentions." in f".{module_path}.":
        return f"{module_path}.{_LEGACY[module]}.{leaf}"
    if key == "time_proj.W":
        return "time_proj.weight"
    return key


def _weights_file(folder: Path) -> Path:
    """The diffusers weights file of a UNet folder (safetensors preferred, else ``.bin``)."""
    for name in ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin"):
        if (folder / name).is_file():
            return folder / name
    path = folder / "diffusion_pytorch_model.safetensors"
    raise MissingFileError(
        f"{path}: missing, and no diffusion_pytorch_model.bin either: no UNet weights in "
        f"{folder} (files: {sorted(p.name for p in folder.iterdir())})",
        file=path,
    )


def read_torch_state_dict(folder: str | Path) -> dict[str, np.ndarray]:
    """The UNet weights of a diffusers folder as numpy arrays (float32), legacy names mapped.

    Reads ``diffusion_pytorch_model.safetensors`` with :func:`read_safetensors` (no torch), else
    ``diffusion_pytorch_model.bin`` with torch (``weights_only=True``). Unreadable files and
    non-float or non-finite weights raise ``CheckpointError`` naming the file and tensors.
    """
    path = _weights_file(find_model_folder(folder))
    if path.suffix == ".safetensors":
        raw = read_safetensors(path)
    else:
        try:
            import torch
        except ImportError as err:
            raise ImportError(
                f"{path} is a PyTorch pickle: reading it needs torch. Install torch, or run "
                "`flax-celeba convert` once on a machine that has it."
            ) from err
        try:
            loaded = torch.load(str(path), map_location="cpu", weights_only=True)
        except Exception as err:  # UnpicklingError, RuntimeError (truncated zip), EOFError
            raise CheckpointError(
                f"{path}: torch.load cannot read it ({type(err).__name__}: {err}); the file is "
                "truncated or not a PyTorch state dict",
                file=path,
                case="corrupt-file",
            ) from err
        if not isinstance(loaded, Mapping) or not all(
            isinstance(v, torch.Tensor) for v in loaded.values()
        ):
            raise CheckpointError(
                f"{path}: not a state dict of tensors (got {type(loaded).__name__})",
                file=path,
                case="corrupt-file",
            )
        raw = {
            k: (v.float() if v.dtype == torch.bfloat16 else v).detach().numpy()
            for k, v in loaded.items()
        }
    check_weights(raw, path)
    return {_canonical_key(k): np.asarray(v, dtype=np.float32) for k, v in raw.items()}


def _flatten(tree: Mapping[str, Any], prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], Any]:
    out: dict[tuple[str, ...], Any] = {}
    for key, value in tree.items():
        if isinstance(value, Mapping):
            out.update(_flatten(value, (*prefix, key)))
        else:
            out[(*prefix, key)] = value
    return out


def _unflatten(flat: Mapping[tuple[str, ...], Any]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for path, value in flat.items():
        node = tree
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node[path[-1]] = value
    return tree


def _to_flax_layout(tensor: np.ndarray, target_ndim: int, leaf: str) -> np.ndarray:
    if leaf == "kernel" and target_ndim == 4 and tensor.ndim == 4:
        return tensor.transpose(2, 3, 1, 0)
    if leaf == "kernel" and target_ndim == 2:
        if tensor.ndim == 4 and tensor.shape[2:] == (1, 1):  # 1x1 conv stored for a linear map
            tensor = tensor[:, :, 0, 0]
        return tensor.T
    return tensor


@functools.lru_cache(maxsize=16)
def _expected_shapes(config: UNetConfig) -> tuple[tuple[tuple[str, ...], tuple[int, ...]], ...]:
    from .unet import param_shapes

    return tuple((k, tuple(v.shape)) for k, v in _flatten(param_shapes(config)).items())


def expected_shapes(config: UNetConfig) -> dict[tuple[str, ...], tuple[int, ...]]:
    """Flat ``{flax path: shape}`` of ``config``'s model (abstract evaluation, no compute)."""
    return dict(_expected_shapes(config))


def _checked_shapes(config: UNetConfig, config_file: Path) -> dict[tuple[str, ...], tuple[int, ...]]:
    """``expected_shapes``, with any failure to build the model reported against the config."""
    try:
        return expected_shapes(config)
    except Exception as err:  # a layer rejecting the config (groups, heads, sizes)
        raise InvalidConfig(
            f"{config_file}: does not describe a buildable UNet2DModel "
            f"({type(err).__name__}: {err})",
            file=config_file,
        ) from err


def torch_to_flax(
    state_dict: Mapping[str, np.ndarray], config: UNetConfig, source: str | Path | None = None
) -> dict[str, Any]:
    """Flax parameters of ``config``'s model from a diffusers state dict.

    Raises ``ConversionError`` listing every missing, unexpected and mis-shaped tensor by its
    diffusers name, with found and expected shapes; ``source`` (the weights file) starts the
    message.
    """
    flat: dict[tuple[str, ...], np.ndarray] = {}
    missing, misshaped = [], []
    used = set()
    for path, shape in expected_shapes(config).items():
        key = flax_path_to_torch_key(path)
        if key not in state_dict:
            missing.append((key, _torch_shape(shape, path[-1])))
            continue
        used.add(key)
        tensor = _to_flax_layout(np.asarray(state_dict[key]), len(shape), path[-1])
        if tuple(tensor.shape) != shape:
            misshaped.append(
                (key, tuple(np.shape(state_dict[key])), _torch_shape(shape, path[-1]))
            )
            continue
        flat[path] = np.ascontiguousarray(tensor, dtype=np.float32)
    unexpected = [(k, tuple(np.shape(state_dict[k]))) for k in sorted(set(state_dict) - used)]
    if missing or unexpected or misshaped:
        where = str(source) if source is not None else "state dict"
        file = Path(source) if source is not None else None
        raise _mismatch_error(where, missing, unexpected, misshaped, file=file)
    return _unflatten(flat)


def _torch_shape(flax_shape: tuple[int, ...], leaf: str) -> tuple[int, ...]:
    """The diffusers layout of a flax parameter shape (conv ``(O, I, kh, kw)``, dense ``(O, I)``)."""
    if leaf == "kernel" and len(flax_shape) == 4:
        return (flax_shape[3], flax_shape[2], flax_shape[0], flax_shape[1])
    if leaf == "kernel" and len(flax_shape) == 2:
        return flax_shape[::-1]
    return flax_shape


def flax_to_torch(params: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """The inverse map: a diffusers-named state dict (numpy) from flax parameters."""
    out = {}
    for path, value in _flatten(params).items():
        value = np.asarray(value)
        if path[-1] == "kernel" and value.ndim == 4:
            value = value.transpose(3, 2, 0, 1)
        elif path[-1] == "kernel" and value.ndim == 2:
            value = value.T
        out[flax_path_to_torch_key(path)] = np.ascontiguousarray(value)
    return out


def scheduler_config_path(folder: Path) -> Path | None:
    """The pipeline's ``scheduler_config.json`` next to (or above) a UNet folder, if any."""
    root = folder.parent if folder.name == "unet" else folder
    for candidate in (
        folder / "scheduler_config.json",
        root / "scheduler_config.json",
        root / "scheduler" / "scheduler_config.json",
    ):
        if candidate.is_file():
            return candidate
    return None


def save_converted(
    dst: str | Path, params: Mapping[str, Any], config: UNetConfig, source: str = ""
) -> Path:
    """Write a converted folder (format in the module docstring); returns its path."""
    from safetensors.numpy import save_file

    dst = Path(dst)
    dst.mkdir(parents=True, exist_ok=True)
    flat = {"/".join(k): np.asarray(v, np.float32) for k, v in _flatten(params).items()}
    save_file(flat, str(dst / PARAMS_FILE))
    (dst / "config.json").write_text(json.dumps(config.to_dict(), indent=2))
    meta = {
        "format": FORMAT,
        "source": source,
        "num_params": int(sum(v.size for v in flat.values())),
    }
    (dst / META_FILE).write_text(json.dumps(meta, indent=2))
    return dst


def _check_converted_meta(model_folder: Path) -> None:
    """``flax_celeba.json`` and ``flax_params.safetensors`` are both there, format ``FORMAT``."""
    meta_path, params_path = model_folder / META_FILE, model_folder / PARAMS_FILE
    if not meta_path.is_file():
        raise MissingFileError(
            f"{meta_path}: missing. {params_path} is a converted checkpoint but its format file "
            f"flax_celeba.json (expected {{\"format\": \"{FORMAT}\", ...}}) is not there: restore "
            "it or re-run `flax-celeba convert` on the source checkpoint",
            file=meta_path,
        )
    if not params_path.is_file():
        raise MissingFileError(
            f"{params_path}: missing. {meta_path} marks a converted folder but its weights are "
            "not there: re-run `flax-celeba convert`",
            file=params_path,
        )
    meta = read_json(meta_path)
    fmt = meta.get("format") if isinstance(meta, dict) else None
    if fmt != FORMAT:
        raise CheckpointError(
            f"{meta_path}: format version {fmt!r}, expected {FORMAT!r} (this flax_celeba reads "
            "only that one): re-run `flax-celeba convert` on the source checkpoint",
            file=meta_path,
            case="format-version",
        )


def load_params(folder: str | Path) -> tuple[UNetConfig, dict[str, Any]]:
    """``(config, params)`` from a converted folder, or directly from a diffusers folder.

    Both are checked against the config: tensor names and shapes (``ConversionError``), dtypes
    and finiteness; a converted folder also needs ``flax_celeba.json`` of format ``FORMAT``.
    Every failure is a ``CheckpointError`` naming the file (module docstring).
    """
    model_folder = find_model_folder(folder)
    config_file = model_folder / "config.json"
    converted = (model_folder / PARAMS_FILE).is_file() or (model_folder / META_FILE).is_file()
    if converted:
        _check_converted_meta(model_folder)
    config = load_config(model_folder)
    expected = _checked_shapes(config, config_file)
    if not converted:
        weights = _weights_file(model_folder)
        return config, torch_to_flax(read_torch_state_dict(model_folder), config, source=weights)
    params_path = model_folder / PARAMS_FILE
    raw = read_safetensors(params_path)
    stored = {tuple(k.split("/")): v for k, v in raw.items()}
    missing = [("/".join(k), s) for k, s in expected.items() if k not in stored]
    unexpected = [("/".join(k), tuple(v.shape)) for k, v in stored.items() if k not in expected]
    misshaped = [
        ("/".join(k), tuple(stored[k].shape), s)
        for k, s in expected.items()
        if k in stored and tuple(stored[k].shape) != s
    ]
    if missing or unexpected or misshaped:
        raise _mismatch_error(
            f"{params_path} (checked against {config_file})",
            sorted(missing),
            sorted(unexpected),
            sorted(misshaped),
            file=params_path,
        )
    check_weights(raw, params_path)
    return config, _unflatten({k: np.asarray(v, np.float32) for k, v in stored.items()})


def convert(src: str | Path, dst: str | Path) -> Path:
    """Convert a diffusers UNet folder ``src`` into a flax_celeba folder ``dst``."""
    model_folder = find_model_folder(src)
    config = load_config(model_folder)
    _checked_shapes(config, model_folder / "config.json")
    weights = _weights_file(model_folder)
    params = torch_to_flax(read_torch_state_dict(model_folder), config, source=weights)
    out = save_converted(dst, params, config, source=str(Path(src).resolve()))
    scheduler = scheduler_config_path(model_folder)
    if scheduler is not None:
        shutil.copyfile(scheduler, out / "scheduler_config.json")
    return out
