"""Fixtures: small random diffusers UNets with the block types of each CelebA-HQ checkpoint
(built with torch), and tiny random checkpoint folders written without torch.

Built with diffusers (test-only extra), weights perturbed away from their initial values (so
norm scales/biases are not 1/0), saved with ``save_pretrained`` (safetensors) and converted.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from flax_celeba.testing import SMALL_VE, SMALL_VP, build_diffusers_unet


def _saved(tmp_path_factory, config: dict, name: str):
    pytest.importorskip("torch")
    pytest.importorskip("diffusers")
    model = build_diffusers_unet(config)
    folder = Path(tmp_path_factory.mktemp(name)) / "diffusers"
    model.save_pretrained(folder, safe_serialization=True)
    return model, folder


@pytest.fixture(scope="session")
def small_vp(tmp_path_factory):
    """``(torch model, diffusers folder)`` of the small DDPM-like UNet."""
    return _saved(tmp_path_factory, SMALL_VP, "vp")


@pytest.fixture(scope="session")
def small_ve(tmp_path_factory):
    """``(torch model, diffusers folder)`` of the small NCSN++-like UNet."""
    return _saved(tmp_path_factory, SMALL_VE, "ve")


# Tiny models built without torch: random weights of the right shapes (abstract evaluation only),
# written as a converted folder or as a raw diffusers folder. 8x8 images, two levels.
TINY_VP = dict(
    sample_size=8,
    block_out_channels=(8, 16),
    layers_per_block=1,
    down_block_types=("DownBlock2D", "AttnDownBlock2D"),
    up_block_types=("AttnUpBlock2D", "UpBlock2D"),
    norm_num_groups=4,
    attention_head_dim=None,
    flip_sin_to_cos=False,
    freq_shift=1,
    norm_eps=1e-6,
    downsample_padding=0,
)
TINY_VE = dict(  # the AttnSkip blocks hard-code 32 groups: 32 channels at least
    sample_size=8,
    block_out_channels=(32, 32),
    layers_per_block=1,
    down_block_types=("SkipDownBlock2D", "AttnSkipDownBlock2D"),
    up_block_types=("AttnSkipUpBlock2D", "SkipUpBlock2D"),
    time_embedding_type="fourier",
    norm_num_groups=None,
    attention_head_dim=None,
    norm_eps=1e-6,
    mid_block_scale_factor=2**0.5,
    center_input_sample=True,
)
DDPM_SCHEDULER_JSON = {"_class_name": "DDPMScheduler", "num_train_timesteps": 1000}


def write_tiny_checkpoint(
    folder: Path,
    config: dict = TINY_VP,
    *,
    converted: bool = True,
    scheduler: dict | None = DDPM_SCHEDULER_JSON,
    seed: int = 0,
) -> Path:
    """A random model folder: ``flax_celeba convert`` output (``converted``) or diffusers'
    layout (``config.json`` + ``diffusion_pytorch_model.safetensors``); returns ``folder``."""
    import json

    import numpy as np
    from safetensors.numpy import save_file

    from flax_celeba import convert
    from flax_celeba.config import UNetConfig

    unet_config = UNetConfig(**config)
    rng = np.random.default_rng(seed)
    flat = {
        k: (0.1 * rng.standard_normal(s)).astype(np.float32)
        for k, s in convert.expected_shapes(unet_config).items()
    }
    params = convert._unflatten(flat)
    if converted:
        convert.save_converted(folder, params, unet_config, source="random")
    else:
        folder.mkdir(parents=True, exist_ok=True)
        save_file(convert.flax_to_torch(params), str(folder / "diffusion_pytorch_model.safetensors"))
        (folder / "config.json").write_text(json.dumps(unet_config.to_dict()))
    if scheduler is not None:
        (folder / "scheduler_config.json").write_text(json.dumps(scheduler))
    return folder


@pytest.fixture
def tiny_checkpoint():
    """``write_tiny_checkpoint`` (``config``: a dict, or ``"vp"``/``"ve"`` for the tiny ones)."""

    def build(folder: Path, config: dict | str = "vp", **kwargs) -> Path:
        config = {"vp": TINY_VP, "ve": TINY_VE}[config] if isinstance(config, str) else config
        return write_tiny_checkpoint(Path(folder), config, **kwargs)

    return build
