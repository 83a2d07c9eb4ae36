"""``UNet2DModel`` configuration: parsing a diffusers ``config.json``, validation, presets.

Missing keys take diffusers' own defaults (``UNet2DModel.__init__`` in diffusers 0.27 .. 0.42), so
that a converted model behaves as ``UNet2DModel.from_pretrained`` does with the same file. Options
this package does not implement raise ``UnsupportedOption`` naming the option and its value.

The two presets restate ``shared/CELEBA.md``; each value says where it comes from. A real
``config.json`` always wins over a preset (:func:`load_config`).
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

__all__ = [
    "CheckpointError",
    "MissingFileError",
    "InvalidConfig",
    "UnsupportedOption",
    "UNetConfig",
    "DOWN_BLOCK_TYPES",
    "UP_BLOCK_TYPES",
    "PRESETS",
    "DDPM_CELEBAHQ_256",
    "NCSNPP_CELEBAHQ_256",
    "WEIGHT_FILES",
    "find_model_folder",
    "read_json",
    "load_config",
]

DOWN_BLOCK_TYPES = ("DownBlock2D", "AttnDownBlock2D", "SkipDownBlock2D", "AttnSkipDownBlock2D")
UP_BLOCK_TYPES = ("UpBlock2D", "AttnUpBlock2D", "SkipUpBlock2D", "AttnSkipUpBlock2D")
ACTIVATIONS = ("silu", "swish", "mish", "gelu", "relu")

# Keys of a diffusers config.json that carry no architecture (bookkeeping only).
_IGNORED_KEYS = ("_class_name", "_diffusers_version", "_name_or_path", "_use_default_values")


class CheckpointError(ValueError):
    """A model folder that cannot be loaded; the message names the file and what is wrong.

    ``file``: the offending file (``None`` when the error concerns values given in code);
    ``case``: a short tag of the kind of damage (``"missing-file"``, ``"unreadable-json"``,
    ``"format-version"``, ``"invalid-config"``, ``"unsupported-option"``, ``"tensor-mismatch"``,
    ``"corrupt-file"``, ``"bad-dtype"``, ``"non-finite"``).
    """

    default_case: str | None = None

    def __init__(
        self, message: str, *, file: str | Path | None = None, case: str | None = None
    ) -> None:
        super().__init__(message)
        self.file = None if file is None else Path(file)
        self.case = case if case is not None else self.default_case


class MissingFileError(CheckpointError, FileNotFoundError):
    """A file a model folder needs is absent (also a ``FileNotFoundError``)."""

    default_case = "missing-file"


class InvalidConfig(CheckpointError):
    """A configuration value outside its allowed range (the message names field and range)."""

    default_case = "invalid-config"


class UnsupportedOption(CheckpointError):
    """A ``config.json`` option (or value) that flax_celeba does not implement."""

    default_case = "unsupported-option"


@dataclasses.dataclass(frozen=True)
class UNetConfig:
    """The ``UNet2DModel`` arguments flax_celeba implements (diffusers' names and defaults)."""

    sample_size: int | tuple[int, int] | None = None
    in_channels: int = 3
    out_channels: int = 3
    center_input_sample: bool = False
    time_embedding_type: str = "positional"
    time_embedding_dim: int | None = None
    freq_shift: float = 0
    flip_sin_to_cos: bool = True
    down_block_types: tuple[str, ...] = (
        "DownBlock2D",
        "AttnDownBlock2D",
        "AttnDownBlock2D",
        "AttnDownBlock2D",
    )
    mid_block_type: str | None = "UNetMidBlock2D"
    up_block_types: tuple[str, ...] = (
        "AttnUpBlock2D",
        "AttnUpBlock2D",
        "AttnUpBlock2D",
        "UpBlock2D",
    )
    block_out_channels: tuple[int, ...] = (224, 448, 672, 896)
    layers_per_block: int = 2
    mid_block_scale_factor: float = 1.0
    downsample_padding: int = 1
    downsample_type: str = "conv"
    upsample_type: str = "conv"
    dropout: float = 0.0
    act_fn: str = "silu"
    attention_head_dim: int | None = 8
    norm_num_groups: int | None = 32
    attn_norm_num_groups: int | None = None
    norm_eps: float = 1e-5
    resnet_time_scale_shift: str = "default"
    add_attention: bool = True
    class_embed_type: str | None = None
    num_class_embeds: int | None = None
    num_train_timesteps: int | None = None

    def __post_init__(self) -> None:
        for name in ("down_block_types", "up_block_types", "block_out_channels"):
            value = getattr(self, name)
            if not isinstance(value, (list, tuple)):
                raise InvalidConfig(f"{name}: {value!r}, need a list (one entry per block)")
            object.__setattr__(self, name, tuple(value))
        if isinstance(self.sample_size, list):
            object.__setattr__(self, "sample_size", tuple(self.sample_size))
        object.__setattr__(
            self, "down_block_types", tuple(_strip_unetres(b) for b in self.down_block_types)
        )
        object.__setattr__(
            self, "up_block_types", tuple(_strip_unetres(b) for b in self.up_block_types)
        )
        self.validate()

    @property
    def time_embed_dim(self) -> int:
        """Width of the time embedding MLP (``time_embedding_dim`` or 4 x first block width)."""
        return self.time_embedding_dim or self.block_out_channels[0] * 4

    def validate(self) -> None:
        """Raise ``InvalidConfig``/``UnsupportedOption`` naming an option flax_celeba cannot
        honour (both are ``ValueError``)."""
        self._validate_values()
        n = len(self.block_out_channels)
        if len(self.down_block_types) != len(self.up_block_types):
            raise InvalidConfig(
                "down_block_types and up_block_types must have the same length, got "
                f"{self.down_block_types} and {self.up_block_types}"
            )
        if len(self.down_block_types) != n:
            raise InvalidConfig(
                f"block_out_channels ({self.block_out_channels}) must have one entry per down "
                f"block ({self.down_block_types})"
            )
        for name in self.down_block_types:
            if name not in DOWN_BLOCK_TYPES:
                raise UnsupportedOption(
                    f"down_block_types: {name!r} is not supported (supported: {DOWN_BLOCK_TYPES})"
                )
        for name in self.up_block_types:
            if name not in UP_BLOCK_TYPES:
                raise UnsupportedOption(
                    f"up_block_types: {name!r} is not supported (supported: {UP_BLOCK_TYPES})"
                )
        if self.mid_block_type not in ("UNetMidBlock2D", None):
            raise UnsupportedOption(
                f"mid_block_type: {self.mid_block_type!r} is not supported "
                "(supported: 'UNetMidBlock2D', None)"
            )
        if self.time_embedding_type not in ("positional", "fourier"):
            raise UnsupportedOption(
                f"time_embedding_type: {self.time_embedding_type!r} is not supported "
                "(supported: 'positional', 'fourier')"
            )
        if self.class_embed_type is not None or self.num_class_embeds is not None:
            raise UnsupportedOption(
                "class_embed_type / num_class_embeds: class conditioning is not supported "
                f"(got {self.class_embed_type!r}, {self.num_class_embeds!r})"
            )
        if self.resnet_time_scale_shift not in ("default", "scale_shift"):
            raise UnsupportedOption(
                f"resnet_time_scale_shift: {self.resnet_time_scale_shift!r} is not supported "
                "(supported: 'default', 'scale_shift')"
            )
        if self.act_fn not in ACTIVATIONS:
            raise UnsupportedOption(f"act_fn: {self.act_fn!r} is not supported ({ACTIVATIONS})")
        if self.downsample_type != "conv" and "AttnDownBlock2D" in self.down_block_types:
            raise UnsupportedOption(
                f"downsample_type: {self.downsample_type!r} is not supported (supported: 'conv')"
            )
        if self.upsample_type != "conv" and "AttnUpBlock2D" in self.up_block_types:
            raise UnsupportedOption(
                f"upsample_type: {self.upsample_type!r} is not supported (supported: 'conv')"
            )
        if self.downsample_padding not in (0, 1):
            raise UnsupportedOption(
                f"downsample_padding: {self.downsample_padding!r} is not supported (0 or 1)"
            )
        if (self.in_channels != 3 or self.out_channels != 3) and _uses_skip(self):
            raise UnsupportedOption(
                "in_channels/out_channels: the Skip*Block2D types hard-code 3 image channels, got "
                f"{self.in_channels}/{self.out_channels}"
            )
        if self.sample_size is not None:
            factor = 2 ** (n - 1)
            sizes = (
                (self.sample_size,) * 2 if isinstance(self.sample_size, int) else self.sample_size
            )
            if any(s % factor for s in sizes):
                raise InvalidConfig(f"sample_size {self.sample_size} must be a multiple of {factor}")
        self._validate_divisibility()

    def _validate_values(self) -> None:
        """Types and ranges of the numeric fields."""
        for name in ("in_channels", "out_channels", "layers_per_block"):
            _check_int(name, getattr(self, name), minimum=1)
        for name in ("time_embedding_dim", "attention_head_dim", "norm_num_groups"):
            _check_int(name, getattr(self, name), minimum=1, optional=True)
        _check_int("attn_norm_num_groups", self.attn_norm_num_groups, minimum=1, optional=True)
        _check_int("downsample_padding", self.downsample_padding, minimum=0)
        if not self.block_out_channels:
            raise InvalidConfig("block_out_channels: empty, need at least one block")
        for i, channels in enumerate(self.block_out_channels):
            _check_int(f"block_out_channels[{i}]", channels, minimum=1)
        if isinstance(self.sample_size, tuple) and len(self.sample_size) != 2:
            raise InvalidConfig(f"sample_size: {self.sample_size!r}, need an int or [height, width]")
        sides = self.sample_size if isinstance(self.sample_size, tuple) else (self.sample_size,)
        for side in sides:
            _check_int("sample_size", side, minimum=1, optional=self.sample_size is None)
        for name, value, low in (
            ("norm_eps", self.norm_eps, 0.0),
            ("mid_block_scale_factor", self.mid_block_scale_factor, 0.0),
        ):
            if not _is_real(value) or not (math.isfinite(value) and value > low):
                raise InvalidConfig(f"{name}: {value!r}, need a finite number > {low:g}")
        for name in ("freq_shift", "dropout"):
            if not _is_real(getattr(self, name)) or not math.isfinite(getattr(self, name)):
                raise InvalidConfig(f"{name}: {getattr(self, name)!r}, need a finite number")
        if not 0.0 <= self.dropout < 1.0:
            raise InvalidConfig(f"dropout: {self.dropout!r}, need 0 <= dropout < 1")

    def _validate_divisibility(self) -> None:
        """The group and head counts divide the channels they split (block types known valid)."""
        if self.norm_num_groups is not None and not _uses_skip(self):
            for i, channels in enumerate(self.block_out_channels):
                if channels % self.norm_num_groups:
                    raise InvalidConfig(
                        f"norm_num_groups: {self.norm_num_groups} does not divide "
                        f"block_out_channels[{i}] = {channels} (GroupNorm needs it to)"
                    )
        if self.attention_head_dim is not None:
            blocks = zip(self.block_out_channels, self.down_block_types)
            attn = [c for c, b in blocks if b.startswith("Attn")]
            if self.mid_block_type is not None and self.add_attention:
                attn.append(self.block_out_channels[-1])
            for channels in attn:
                if channels % self.attention_head_dim:
                    raise InvalidConfig(
                        f"attention_head_dim: {self.attention_head_dim} does not divide the "
                        f"{channels} channels of an attention layer"
                    )

    @classmethod
    def from_dict(cls, config: dict[str, Any]) -> UNetConfig:
        """Build from a diffusers ``config.json`` dict; unknown keys raise ``UnsupportedOption``."""
        if not isinstance(config, dict):
            raise InvalidConfig(f"a UNet config must be a JSON object, got {type(config).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        cls_name = config.get("_class_name", "UNet2DModel")
        if cls_name != "UNet2DModel":
            raise UnsupportedOption(f"_class_name: {cls_name!r} (only 'UNet2DModel' is supported)")
        unknown = sorted(k for k in config if k not in known and k not in _IGNORED_KEYS)
        if unknown:
            raise UnsupportedOption(f"config.json keys not supported by flax_celeba: {unknown}")
        return cls(**{k: v for k, v in config.items() if k in known})

    def to_dict(self) -> dict[str, Any]:
        """A diffusers-compatible ``config.json`` dict."""
        out: dict[str, Any] = {"_class_name": "UNet2DModel"}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            out[f.name] = list(value) if isinstance(value, tuple) else value
        return out

    def replace(self, **changes: Any) -> UNetConfig:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)


def _strip_unetres(name: str) -> str:
    # diffusers' get_down_block/get_up_block strip a "UNetRes" prefix.
    return name[7:] if isinstance(name, str) and name.startswith("UNetRes") else name


def _is_real(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_int(name: str, value: Any, minimum: int, optional: bool = False) -> None:
    """``value`` is an int >= ``minimum`` (or ``None`` when ``optional``); else ``InvalidConfig``."""
    if value is None and optional:
        return
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        allowed = f"an integer >= {minimum}" + (" or null" if optional else "")
        raise InvalidConfig(f"{name}: {value!r}, need {allowed}")


def _uses_skip(config: UNetConfig) -> bool:
    return any("Skip" in b for b in config.down_block_types + config.up_block_types)


# google/ddpm-celebahq-256. Source (shared/CELEBA.md): config.json re-saved in public fine-tuned
# copies of the checkpoint; consistent with score_sde configs/vp/ddpm/celebahq.py (nf 128,
# ch_mult (1,1,2,2,4,4), 2 res blocks, attention at 16x16 = the 5th block).
DDPM_CELEBAHQ_256 = UNetConfig(
    sample_size=256,
    in_channels=3,
    out_channels=3,
    layers_per_block=2,
    block_out_channels=(128, 128, 256, 256, 512, 512),
    down_block_types=(
        "DownBlock2D",
        "DownBlock2D",
        "DownBlock2D",
        "DownBlock2D",
        "AttnDownBlock2D",
        "DownBlock2D",
    ),
    up_block_types=(
        "UpBlock2D",
        "AttnUpBlock2D",
        "UpBlock2D",
        "UpBlock2D",
        "UpBlock2D",
        "UpBlock2D",
    ),
    time_embedding_type="positional",
    flip_sin_to_cos=False,
    freq_shift=1,
    norm_num_groups=32,
    norm_eps=1e-6,
    act_fn="silu",
    attention_head_dim=None,
    downsample_padding=0,
    mid_block_scale_factor=1.0,
    center_input_sample=False,
)

# google/ncsnpp-celebahq-256. Source (shared/CELEBA.md): reconstructed from the sibling
# ncsnpp-church-256 config re-saved publicly and score_sde's celebahq-256 config; unverified for
# this exact checkpoint. attention_head_dim is not listed there: None (one head of full width)
# is score_sde's AttnBlockpp; a real config.json that omits the key gets diffusers' default (8).
NCSNPP_CELEBAHQ_256 = UNetConfig(
    sample_size=256,
    in_channels=3,
    out_channels=3,
    layers_per_block=2,
    block_out_channels=(128, 128, 256, 256, 256, 256, 256),
    down_block_types=(
        "SkipDownBlock2D",
        "SkipDownBlock2D",
        "SkipDownBlock2D",
        "SkipDownBlock2D",
        "AttnSkipDownBlock2D",
        "SkipDownBlock2D",
        "SkipDownBlock2D",
    ),
    up_block_types=(
        "SkipUpBlock2D",
        "SkipUpBlock2D",
        "AttnSkipUpBlock2D",
        "SkipUpBlock2D",
        "SkipUpBlock2D",
        "SkipUpBlock2D",
        "SkipUpBlock2D",
    ),
    time_embedding_type="fourier",
    flip_sin_to_cos=True,
    freq_shift=0,
    downsample_padding=1,
    mid_block_scale_factor=math.sqrt(2.0),
    norm_eps=1e-6,
    norm_num_groups=None,
    attention_head_dim=None,
    act_fn="silu",
    center_input_sample=True,
)

PRESETS: dict[str, UNetConfig] = {
    "ddpm-celebahq-256": DDPM_CELEBAHQ_256,
    "ncsnpp-celebahq-256": NCSNPP_CELEBAHQ_256,
}


WEIGHT_FILES = (
    "flax_params.safetensors",
    "diffusion_pytorch_model.safetensors",
    "diffusion_pytorch_model.bin",
)
"""Weight files a model folder may hold (converted first, then diffusers')."""


def find_model_folder(folder: str | Path) -> Path:
    """The folder holding the UNet's ``config.json``: ``folder`` itself or its ``unet/``.

    Hub pipelines store the UNet either at the top (google/ddpm-*) or under ``unet/``
    (google/ncsnpp-*). Raises ``MissingFileError`` (a ``FileNotFoundError``) naming the missing
    ``config.json`` when weights are there without it, with download instructions otherwise.
    """
    folder = Path(folder)
    candidates = (folder, folder / "unet")
    for candidate in candidates:
        if (candidate / "config.json").is_file():
            return candidate
    for candidate in candidates:
        weights = [name for name in WEIGHT_FILES if (candidate / name).is_file()]
        if weights:
            path = candidate / "config.json"
            raise MissingFileError(
                f"{path}: missing. {candidate} holds {weights[0]} but not the diffusers "
                "config.json that describes its UNet: copy it from the source checkpoint (or "
                "re-run `flax-celeba convert`)",
                file=path,
            )
    raise MissingFileError(
        f"no UNet config.json in {folder} (nor in {folder / 'unet'}). Download a checkpoint on a "
        "machine with internet, e.g.\n"
        f"  huggingface-cli download google/ddpm-celebahq-256 --local-dir {folder}\n"
        f"  huggingface-cli download google/ncsnpp-celebahq-256 --local-dir {folder}\n"
        "then copy the folder here (nothing is downloaded at run time).",
        file=folder / "config.json",
    )


def read_json(path: str | Path) -> Any:
    """A JSON file's content; ``CheckpointError`` naming the file, line and column if it is not
    valid JSON (e.g. truncated)."""
    path = Path(path)
    try:
        text = path.read_text()
    except UnicodeDecodeError as err:
        raise CheckpointError(
            f"{path}: not a text (JSON) file ({err})", file=path, case="unreadable-json"
        ) from err
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise CheckpointError(
            f"{path}: not valid JSON ({err.msg} at line {err.lineno}, column {err.colno}; "
            f"{len(text)} characters)",
            file=path,
            case="unreadable-json",
        ) from err


def load_config(folder: str | Path | None = None, preset: str | None = None) -> UNetConfig:
    """The config of ``folder`` (its ``config.json``), else the named preset.

    A bad ``config.json`` raises ``CheckpointError`` (``InvalidConfig``, ``UnsupportedOption``)
    whose message starts with the file's path and names the field.
    """
    if folder is not None:
        path = find_model_folder(folder) / "config.json"
        try:
            return UNetConfig.from_dict(read_json(path))
        except CheckpointError as err:
            if err.file is not None:
                raise
            raise type(err)(f"{path}: {err}", file=path, case=err.case) from err
        except (TypeError, AttributeError) as err:  # a value of the wrong type
            raise InvalidConfig(f"{path}: a value has the wrong type: {err}", file=path) from err
    if preset is None:
        raise ValueError("give a model folder or a preset name")
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; presets: {sorted(PRESETS)}")
    return PRESETS[preset]
