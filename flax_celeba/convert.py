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
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .config import UNetConfig, find_model_folder, load_config

__all__ = [
    "FORMAT",
    "ConversionError",
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


class ConversionError(ValueError):
    """Missing, unexpected or mis-shaped tensors, listed by name."""


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


def read_torch_state_dict(folder: str | Path) -> dict[str, np.ndarray]:
    """The UNet weights of a diffusers folder as numpy arrays (float32), legacy names mapped.

    Reads ``diffusion_pytorch_model.safetensors`` with safetensors' numpy API (no torch), else
    ``diffusion_pytorch_model.bin`` with torch (``weights_only=True``).
    """
    folder = find_model_folder(folder)
    st_path = folder / "diffusion_pytorch_model.safetensors"
    bin_path = folder / "diffusion_pytorch_model.bin"
    if st_path.is_file():
        from safetensors.numpy import load_file

        raw = load_file(str(st_path))
    elif bin_path.is_file():
        try:
            import torch
        except ImportError as err:
            raise ImportError(
                f"{bin_path} is a PyTorch pickle: reading it needs torch. Install torch, or run "
                "`flax-celeba convert` once on a machine that has it."
            ) from err
        loaded = torch.load(str(bin_path), map_location="cpu", weights_only=True)
        raw = {k: v.detach().float().numpy() for k, v in loaded.items()}
    else:
        raise FileNotFoundError(
            f"no diffusion_pytorch_model.safetensors or .bin in {folder} (files: "
            f"{sorted(p.name for p in folder.iterdir())})"
        )
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


def expected_shapes(config: UNetConfig) -> dict[tuple[str, ...], tuple[int, ...]]:
    """Flat ``{flax path: shape}`` of ``config``'s model (abstract evaluation, no compute)."""
    from .unet import param_shapes

    return {k: tuple(v.shape) for k, v in _flatten(param_shapes(config)).items()}


def torch_to_flax(state_dict: Mapping[str, np.ndarray], config: UNetConfig) -> dict[str, Any]:
    """Flax parameters of ``config``'s model from a diffusers state dict.

    Raises ``ConversionError`` listing every missing, unexpected and mis-shaped tensor by name.
    """
    flat: dict[tuple[str, ...], np.ndarray] = {}
    missing, shape_errors = [], []
    used = set()
    for path, shape in expected_shapes(config).items():
        key = flax_path_to_torch_key(path)
        if key not in state_dict:
            missing.append(key)
            continue
        used.add(key)
        tensor = _to_flax_layout(np.asarray(state_dict[key]), len(shape), path[-1])
        if tuple(tensor.shape) != shape:
            shape_errors.append(
                f"{key}: got {tuple(np.shape(state_dict[key]))}, expected flax {shape}"
            )
            continue
        flat[path] = np.ascontiguousarray(tensor, dtype=np.float32)
    unexpected = sorted(set(state_dict) - used)
    if missing or unexpected or shape_errors:
        lines = []
        if missing:
            lines.append(f"missing tensors ({len(missing)}): {missing}")
        if unexpected:
            lines.append(f"unexpected tensors ({len(unexpected)}): {unexpected}")
        if shape_errors:
            lines.append(f"mis-shaped tensors ({len(shape_errors)}): {shape_errors}")
        raise ConversionError("state dict does not match the config:\n" + "\n".join(lines))
    return _unflatten(flat)


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


def load_params(folder: str | Path) -> tuple[UNetConfig, dict[str, Any]]:
    """``(config, params)`` from a converted folder, or directly from a diffusers folder.

    A converted folder is checked against its config (names and shapes, ``ConversionError``).
    """
    model_folder = find_model_folder(folder)
    config = load_config(model_folder)
    params_path = model_folder / PARAMS_FILE
    if params_path.is_file():
        from safetensors.numpy import load_file

        meta_path = model_folder / META_FILE
        if meta_path.is_file():
            fmt = json.loads(meta_path.read_text()).get("format")
            if fmt != FORMAT:
                raise ConversionError(f"{meta_path}: format {fmt!r}, expected {FORMAT!r}")
        stored = {tuple(k.split("/")): v for k, v in load_file(str(params_path)).items()}
        expected = expected_shapes(config)
        missing = sorted("/".join(k) for k in expected if k not in stored)
        unexpected = sorted("/".join(k) for k in stored if k not in expected)
        bad = sorted(
            f"{'/'.join(k)}: {stored[k].shape} != {s}"
            for k, s in expected.items()
            if k in stored and tuple(stored[k].shape) != s
        )
        if missing or unexpected or bad:
            raise ConversionError(
                f"{params_path} does not match {model_folder / 'config.json'}: missing {missing}, "
                f"unexpected {unexpected}, mis-shaped {bad}"
            )
        return config, _unflatten(stored)
    return config, torch_to_flax(read_torch_state_dict(model_folder), config)


def convert(src: str | Path, dst: str | Path) -> Path:
    """Convert a diffusers UNet folder ``src`` into a flax_celeba folder ``dst``."""
    model_folder = find_model_folder(src)
    config = load_config(model_folder)
    params = torch_to_flax(read_torch_state_dict(model_folder), config)
    out = save_converted(dst, params, config, source=str(Path(src).resolve()))
    scheduler = scheduler_config_path(model_folder)
    if scheduler is not None:
        shutil.copyfile(scheduler, out / "scheduler_config.json")
    return out
