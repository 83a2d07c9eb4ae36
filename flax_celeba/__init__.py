"""flax_celeba: the CelebA-HQ 256 diffusers checkpoints in JAX/Flax, driven by nsjax schedules.

``load_pretrained(folder)`` returns a jit-able ``(sample NCHW, timestep) -> output`` equal to
diffusers' ``UNet2DModel(sample, timestep).sample``; :mod:`flax_celeba.samplers` holds the DDPM,
VE predictor-corrector and probability-flow ODE samplers; ``flax-celeba`` is the CLI.
"""

from .api import load_pretrained, network_from_params
from .config import (
    PRESETS,
    CheckpointError,
    InvalidConfig,
    MissingFileError,
    UNetConfig,
    UnsupportedOption,
    load_config,
)
from .convert import ConversionError, load_params
from .denoisers import LevelDenoiser, ddpm_denoiser, ve_denoiser
from .samplers import ddpm_ancestral, probability_flow, ve_predictor_corrector
from .schedulers import DDPMSchedulerConfig, VESchedulerConfig
from .unet import UNet2DModel

__all__ = [
    "load_pretrained",
    "network_from_params",
    "PRESETS",
    "UNetConfig",
    "UnsupportedOption",
    "CheckpointError",
    "InvalidConfig",
    "MissingFileError",
    "load_config",
    "ConversionError",
    "load_params",
    "LevelDenoiser",
    "ddpm_denoiser",
    "ve_denoiser",
    "ddpm_ancestral",
    "probability_flow",
    "ve_predictor_corrector",
    "DDPMSchedulerConfig",
    "VESchedulerConfig",
    "UNet2DModel",
]
