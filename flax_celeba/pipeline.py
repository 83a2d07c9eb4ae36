"""From a model folder to images: model kind, scheduler, sampler choice, batching, image output.

A *method* names how images are drawn:

- ``ancestral``: DDPM ancestral sampling (epsilon models; diffusers' DDPMPipeline);
- ``pc``: score-SDE predictor-corrector (VE score models; diffusers' ScoreSdeVePipeline);
- ``ode:SCHEDULE``: the probability-flow ODE of the linear interpolant driven by an nsjax
  schedule (a name of :data:`nsjax.registry.SCHEDULES`: ``constant``, ``vp-dilated``,
  ``ve-dilated``, ``ddpm``, ``vpsde``, ``cosine``, ``vesde``, ``edm``; the older ``dilated_vp`` and
  ``dilated_ve`` are aliases), noise scale 1 (VP) or ``sqrt(d)`` (VE) by nsjax's one rule.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from nsjax import registry as nsjax_registry

from .api import network_from_params
from .config import UNetConfig, find_model_folder
from .convert import load_params, scheduler_config_path
from .denoisers import LevelDenoiser, ddpm_denoiser, ve_denoiser
from .samplers import ddpm_ancestral, probability_flow, ve_predictor_corrector
from .schedulers import (
    DDPM_CELEBAHQ_SCHEDULER,
    VE_CELEBAHQ_SCHEDULER,
    DDPMSchedulerConfig,
    VESchedulerConfig,
    load_scheduler_config,
)

__all__ = ["LoadedModel", "load_model", "make_schedule", "generate", "to_uint8", "save_samples"]

SCHEDULES = tuple(nsjax_registry.SCHEDULES) + tuple(
    alias for entry in nsjax_registry.SCHEDULES.values() for alias in entry.aliases
)
"""Schedule names and aliases accepted by ``ode:SCHEDULE`` (from :mod:`nsjax.registry`)."""


@dataclasses.dataclass(frozen=True)
class LoadedModel:
    """A network with what sampling needs: its config, scheduler and parameterisation."""

    config: UNetConfig
    network: Any  # jax.tree_util.Partial: (sample, timestep) -> output
    scheduler: DDPMSchedulerConfig | VESchedulerConfig
    parameterization: str  # "epsilon" (DDPM index) or "score" (sigma)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        size = self.config.sample_size or 32
        h, w = (size, size) if isinstance(size, int) else size
        return (self.config.in_channels, h, w)

    @property
    def dim(self) -> int:
        return int(np.prod(self.image_shape))

    def denoiser(self) -> LevelDenoiser:
        """The network as a denoiser at any SNR (clamped to the trained range)."""
        if self.parameterization == "epsilon":
            return ddpm_denoiser(self.network, self.scheduler)
        return ve_denoiser(self.network, self.scheduler.sigma_min, self.scheduler.sigma_max)

    def to_unit_range(self, x: jax.Array) -> jax.Array:
        """Samples in [0, 1]: ``(x + 1)/2`` for epsilon models ([-1, 1] data), ``x`` for VE ones
        (``center_input_sample``: the network maps [0, 1] to [-1, 1] itself)."""
        return (x + 1) / 2 if self.parameterization == "epsilon" else x


def load_model(folder: str | Path, sigma_max: float | None = None) -> LoadedModel:
    """Load weights, config and scheduler (``scheduler_config.json`` if present, else presets)."""
    model_folder = find_model_folder(folder)
    config, params = load_params(model_folder)
    parameterization = "score" if config.time_embedding_type == "fourier" else "epsilon"
    path = scheduler_config_path(model_folder)
    if path is not None:
        scheduler = load_scheduler_config(path)
    else:
        scheduler = DDPM_CELEBAHQ_SCHEDULER if parameterization == "epsilon" else VE_CELEBAHQ_SCHEDULER
    expected = DDPMSchedulerConfig if parameterization == "epsilon" else VESchedulerConfig
    if not isinstance(scheduler, expected):
        raise ValueError(f"{path}: a {parameterization} model needs a {expected.__name__}")
    if sigma_max is not None:
        if parameterization != "score":
            raise ValueError("--sigma-max applies to VE (score) models only")
        scheduler = dataclasses.replace(scheduler, sigma_max=sigma_max)
    return LoadedModel(config, network_from_params(config, params), scheduler, parameterization)


def make_schedule(name: str, model: LoadedModel, noise_scale: float, kappa: float = 3.0) -> Any:
    """An nsjax schedule by name for ``model``'s dimension and ``noise_scale``; DDPM and VE-SDE
    take the model's own scheduler constants (:func:`nsjax.registry.make_schedule`)."""
    name = nsjax_registry.resolve(name).name
    sched = model.scheduler
    params: dict[str, Any] = {}
    if name == "ddpm" and isinstance(sched, DDPMSchedulerConfig):
        params = dict(
            num_train_steps=sched.num_train_timesteps,
            beta_start=sched.beta_start,
            beta_end=sched.beta_end,
        )
    if name == "vesde" and isinstance(sched, VESchedulerConfig):
        params = dict(sigma_min=sched.sigma_min, sigma_max=sched.sigma_max, eps=sched.sampling_eps)
    if name in ("vp-dilated", "ve-dilated"):
        params = dict(kappa=kappa)
    return nsjax_registry.make_schedule(name, model.dim, noise_scale=noise_scale, **params)


def generate(
    model: LoadedModel,
    method: str,
    steps: int,
    num_images: int,
    batch_size: int = 8,
    seed: int = 0,
    *,
    interpolant: str | None = None,
    kappa: float = 3.0,
    solver: str = "euler",
    correct_steps: int | None = None,
    progress: bool = True,
) -> np.ndarray:
    """``num_images`` samples in [0, 1], shape (K, C, H, W) float32, drawn in batches.

    ``interpolant``: ``vp`` (noise scale 1) or ``ve`` (``sqrt(d)``) for ``ode:*`` methods; default
    ``vp`` for epsilon models and ``ve`` for score models.
    """
    from nsjax.interpolants import Linear

    kind = interpolant or ("vp" if model.parameterization == "epsilon" else "ve")
    noise_scale = nsjax_registry.noise_scale(kind, model.dim)
    if method == "ancestral" and model.parameterization != "epsilon":
        raise ValueError("method 'ancestral' needs an epsilon (DDPM) model; use 'pc' or 'ode:*'")
    if method == "pc" and model.parameterization != "score":
        raise ValueError("method 'pc' needs a VE score model; use 'ancestral' or 'ode:*'")
    if method.startswith("ode:"):
        schedule = make_schedule(method[4:], model, noise_scale, kappa)
        denoiser = model.denoiser()
        line = Linear(noise_scale)
    elif method not in ("ancestral", "pc"):
        raise ValueError(f"unknown method {method!r} (ancestral, pc, ode:SCHEDULE)")

    key = jax.random.PRNGKey(seed)
    chunk = max(1, steps // 20)
    batches = []
    from tqdm.auto import tqdm

    starts = range(0, num_images, batch_size)
    for start in tqdm(starts, desc=f"{method} x{steps}", unit="batch", disable=not progress):
        b = min(batch_size, num_images - start)
        key, k_init, k_noise = jax.random.split(key, 3)
        z = jax.random.normal(k_init, (b, *model.image_shape), jnp.float32)
        if method == "ancestral":
            x = ddpm_ancestral(model.network, model.scheduler, steps, z, key=k_noise, chunk=chunk)
        elif method == "pc":
            x = ve_predictor_corrector(
                model.network,
                model.scheduler,
                steps,
                model.scheduler.sigma_max * z,
                key=k_noise,
                correct_steps=correct_steps,
                chunk=chunk,
            )
        else:
            x = probability_flow(denoiser, schedule, line, steps, z, solver=solver)
        x = np.asarray(model.to_unit_range(x), np.float32)
        if not np.all(np.isfinite(x)):
            raise FloatingPointError(f"{method} with {steps} steps produced non-finite samples")
        batches.append(x)
    return np.concatenate(batches)


def to_uint8(images: np.ndarray) -> np.ndarray:
    """(K, C, H, W) floats in [0, 1] -> (K, H, W, C) uint8 (clipped, rounded)."""
    return np.round(np.clip(images, 0.0, 1.0) * 255).astype(np.uint8).transpose(0, 2, 3, 1)


def save_samples(folder: str | Path, images: np.ndarray, meta: dict[str, Any]) -> Path:
    """Write ``samples.npz`` (``images`` uint8 NHWC, ``raw`` NCHW), ``grid.png``, ``meta.json``."""
    from PIL import Image

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    pixels = to_uint8(images)
    np.savez_compressed(folder / "samples.npz", images=pixels, raw=images.astype(np.float32))
    k, h, w, c = pixels.shape
    cols = int(math.ceil(math.sqrt(k)))
    rows = int(math.ceil(k / cols))
    grid = np.zeros((rows * h, cols * w, c), np.uint8)
    for i, image in enumerate(pixels):
        r, q = divmod(i, cols)
        grid[r * h : (r + 1) * h, q * w : (q + 1) * w] = image
    Image.fromarray(grid if c == 3 else grid[..., 0]).save(folder / "grid.png")
    (folder / "meta.json").write_text(json.dumps(meta, indent=2))
    return folder
