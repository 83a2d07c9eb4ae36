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
    "UnsupportedOption",
    "UNetConfig",
    "DOWN_BLOCK_TYPES",
    "UP_BLOCK_TYPES",
    "PRESETS",
    "DDPM_CELEBAHQ_256",
    "NCSNPP_CELEBAHQ_256",
    "find_model_folder",
    "load_config",
]

DOWN_BLOCK_TYPES = ("DownBlock2D", "AttnDownBlock2D", "SkipDownBlock2D", "AttnSkipDownBlock2D")
UP_BLOCK_TYPES = ("UpBlock2D", "AttnUpBlock2D", "SkipUpBlock2D", "AttnSkipUpBlock2D")
ACTIVATIONS = ("silu", "swish", "mish", "gelu", "relu")

# Keys of a diffusers config.json that carry no architecture (bookkeeping only).
_IGNORED_KEYS = ("_class_name", "_diffusers_version", "_name_or_path", "_use_default_values")


class UnsupportedOption(ValueError):
    """A ``config.json`` option (or value) that flax_celeba does not implement."""


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
            object.__setattr__(self, name, tuple(getattr(self, name)))
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
        """Raise ``UnsupportedOption``/``ValueError`` naming an option flax_celeba cannot honour."""
        n = len(self.block_out_channels)
        if len(self.down_block_types) != len(self.up_block_types):
            raise ValueError(
                "down_block_types and up_block_types must have the same length, got "
                f"{self.down_block_types} and {self.up_block_types}"
            )
        if len(self.down_block_types) != n:
            raise ValueError(
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
                raise ValueError(f"sample_size {self.sample_size} must be a multiple of {factor}")

    @classmethod
    def from_dict(cls, config: dict[str, Any]) -> UNetConfig:
        """Build from a diffusers ``config.json`` dict; unknown keys raise ``UnsupportedOption``."""
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
    return name[7:] if name.startswith("UNetRes") else name


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


def find_model_folder(folder: str | Path) -> Path:
    """The folder holding the UNet's ``config.json``: ``folder`` itself or its ``unet/``.

    Hub pipelines store the UNet either at the top (google/ddpm-*) or under ``unet/``
    (google/ncsnpp-*). Raises ``FileNotFoundError`` with download instructions otherwise.
    """
    folder = Path(folder)
    for candidate in (folder, folder / "unet"):
        if (candidate / "config.json").is_file():
            return candidate
    raise FileNotFoundError(
        f"no UNet config.json in {folder} (nor in {folder / 'unet'}). Download a checkpoint on a "
        "machine with internet, e.g.\n"
        f"  huggingface-cli download google/ddpm-celebahq-256 --local-dir {folder}\n"
        f"  huggingface-cli download google/ncsnpp-celebahq-256 --local-dir {folder}\n"
        "then copy the folder here (nothing is downloaded at run time)."
    )


def load_config(folder: str | Path | None = None, preset: str | None = None) -> UNetConfig:
    """The config of ``folder`` (its ``config.json``), else the named preset."""
    if folder is not None:
        path = find_model_folder(folder) / "config.json"
        return UNetConfig.from_dict(json.loads(path.read_text()))
    if preset is None:
        raise ValueError("give a model folder or a preset name")
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; presets: {sorted(PRESETS)}")
    return PRESETS[preset]
