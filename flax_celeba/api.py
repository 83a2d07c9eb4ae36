"""``load_pretrained``: a converted (or raw diffusers safetensors) folder as a JAX function."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path

import jax
import jax.numpy as jnp
from jax.tree_util import Partial

from .config import UNetConfig
from .convert import load_params
from .unet import UNet2DModel

__all__ = ["unet_apply", "load_pretrained", "network_from_params"]

Array = jax.Array


@functools.cache
def unet_apply(config: UNetConfig) -> Callable[[dict, Array, Array], Array]:
    """The jit-compiled ``(params, sample NCHW, timestep) -> output NCHW`` of ``config``'s UNet."""
    model = UNet2DModel(config)

    @jax.jit
    def apply(params: dict, sample: Array, timestep: Array) -> Array:
        return model.apply({"params": params}, sample, timestep)

    return apply


def network_from_params(config: UNetConfig, params: dict) -> Partial:
    """``(sample, timestep) -> output`` as a pytree (``Partial``) holding ``params`` as leaves."""
    params = jax.tree.map(lambda a: jnp.asarray(a, jnp.float32), params)
    return Partial(unet_apply(config), params)


def load_pretrained(folder: str | Path) -> Partial:
    """A drop-in for diffusers' ``UNet2DModel(sample, timestep).sample``, in JAX.

    ``folder``: a ``flax-celeba convert`` output, or a diffusers folder (``config.json`` plus
    ``diffusion_pytorch_model.safetensors``; ``.bin`` needs torch), or a pipeline folder with a
    ``unet/`` subfolder. Returns a jit-able, pytree callable ``f(sample, timestep)``: ``sample``
    (B, C, H, W) float32, ``timestep`` scalar or (B,) (DDPM index, or sigma for Fourier-embedded
    models). ``f.args[0]`` is the parameter tree; the config is
    :func:`flax_celeba.config.load_config` of the same folder.

    A damaged folder raises :class:`~flax_celeba.config.CheckpointError` (a ``ValueError``;
    ``MissingFileError`` for an absent file is also a ``FileNotFoundError``) naming the file, and
    the tensor or field with what was expected and found (:mod:`flax_celeba.convert`).
    """
    config, params = load_params(folder)
    return network_from_params(config, params)
