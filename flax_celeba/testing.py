"""Helpers for parity checks against diffusers (tests, benchmark): small configs, random models.

Importing this module needs nothing beyond numpy; :func:`build_diffusers_unet` needs the
test-only extras torch and diffusers.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["SMALL_VP", "SMALL_VE", "build_diffusers_unet", "relative_error"]

# Small versions of the two checkpoints: same block types, options and embeddings, 3 levels of
# width 32/32/64 (divisible by the hard-coded 32 groups of the AttnSkip blocks), 16x16 images.
SMALL_VP = dict(
    sample_size=16,
    block_out_channels=(32, 32, 64),
    layers_per_block=2,
    down_block_types=("DownBlock2D", "AttnDownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "AttnUpBlock2D", "UpBlock2D"),
    time_embedding_type="positional",
    flip_sin_to_cos=False,
    freq_shift=1,
    norm_num_groups=8,
    norm_eps=1e-6,
    attention_head_dim=None,
    downsample_padding=0,
    mid_block_scale_factor=1.0,
    center_input_sample=False,
)
SMALL_VE = dict(
    sample_size=16,
    block_out_channels=(32, 32, 64),
    layers_per_block=2,
    down_block_types=("SkipDownBlock2D", "AttnSkipDownBlock2D", "SkipDownBlock2D"),
    up_block_types=("SkipUpBlock2D", "AttnSkipUpBlock2D", "SkipUpBlock2D"),
    time_embedding_type="fourier",
    flip_sin_to_cos=True,
    freq_shift=0,
    norm_num_groups=None,
    norm_eps=1e-6,
    attention_head_dim=None,
    downsample_padding=1,
    mid_block_scale_factor=math.sqrt(2.0),
    center_input_sample=True,
)


def build_diffusers_unet(config: dict, seed: int = 0):
    """A random diffusers UNet2DModel (eval mode) with every parameter perturbed."""
    import diffusers  # test-only extras: torch and diffusers
    import torch

    torch.manual_seed(seed)
    model = diffusers.UNet2DModel(**config).eval()
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "time_proj" not in name:  # the Fourier weights are already randn * 16
                param.add_(0.05 * torch.randn_like(param))
    return model


def relative_error(got, ref) -> float:
    """``max |got - ref| / max |ref|``: the parity measure (1e-4 in float32)."""
    got, ref = np.asarray(got, np.float64), np.asarray(ref, np.float64)
    return float(np.abs(got - ref).max() / np.abs(ref).max())
