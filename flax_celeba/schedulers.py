"""The two diffusers schedulers' constants: ``DDPMScheduler`` and ``ScoreSdeVeScheduler``.

Only the numbers a sampler needs (noise tables, timestep grids), computed as diffusers computes
them (float32 tables), read from a ``scheduler_config.json`` or from the CelebA-HQ presets of
``shared/CELEBA.md``. The stepping itself is in :mod:`flax_celeba.samplers`.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import numpy as np

from .config import CheckpointError, InvalidConfig, UnsupportedOption, read_json

__all__ = [
    "DDPMSchedulerConfig",
    "VESchedulerConfig",
    "DDPM_CELEBAHQ_SCHEDULER",
    "VE_CELEBAHQ_SCHEDULER",
    "load_scheduler_config",
]


@dataclasses.dataclass(frozen=True)
class DDPMSchedulerConfig:
    """diffusers' ``DDPMScheduler`` arguments used by :mod:`flax_celeba.samplers`."""

    num_train_timesteps: int = 1000
    beta_start: float = 1e-4
    beta_end: float = 0.02
    beta_schedule: str = "linear"
    variance_type: str = "fixed_small"
    clip_sample: bool = True
    clip_sample_range: float = 1.0
    prediction_type: str = "epsilon"
    timestep_spacing: str = "leading"
    steps_offset: int = 0

    def __post_init__(self) -> None:
        _check_int("num_train_timesteps", self.num_train_timesteps, 1)
        _check_int("steps_offset", self.steps_offset, 0)
        _check_range("beta_start", self.beta_start, 0.0, 1.0)
        _check_range("beta_end", self.beta_end, 0.0, 1.0)
        if self.beta_schedule not in ("linear", "scaled_linear"):
            raise UnsupportedOption(
                f"beta_schedule: {self.beta_schedule!r} (linear, scaled_linear)"
            )
        if self.variance_type not in ("fixed_small", "fixed_large"):
            raise UnsupportedOption(
                f"variance_type: {self.variance_type!r} (fixed_small, fixed_large)"
            )
        if self.prediction_type != "epsilon":
            raise UnsupportedOption(f"prediction_type: {self.prediction_type!r} (epsilon)")
        if self.timestep_spacing not in ("leading", "linspace", "trailing"):
            raise UnsupportedOption(f"timestep_spacing: {self.timestep_spacing!r}")

    def betas(self) -> np.ndarray:
        """``beta_n``, ``n = 0 .. T-1``, float32 as diffusers builds them."""
        n = self.num_train_timesteps
        if self.beta_schedule == "linear":
            return np.linspace(self.beta_start, self.beta_end, n, dtype=np.float32)
        roots = np.linspace(self.beta_start**0.5, self.beta_end**0.5, n, dtype=np.float32)
        return roots**2

    def alphas_cumprod(self) -> np.ndarray:
        """``abar_n = prod_{k <= n} (1 - beta_k)`` in float32 (``torch.cumprod`` order)."""
        return np.cumprod(np.float32(1.0) - self.betas(), dtype=np.float32)

    def log_snr(self) -> np.ndarray:
        """``log(abar_n / (1 - abar_n))`` per training timestep (float64), decreasing in ``n``."""
        abar = self.alphas_cumprod().astype(np.float64)
        return np.log(abar) - np.log1p(-abar)

    def timesteps(self, num_inference_steps: int) -> np.ndarray:
        """diffusers' ``set_timesteps`` grid: descending int64 timesteps."""
        n, k = self.num_train_timesteps, num_inference_steps
        if not 1 <= k <= n:
            raise ValueError(f"num_inference_steps must be in [1, {n}], got {k}")
        if self.timestep_spacing == "linspace":
            return np.linspace(0, n - 1, k).round()[::-1].astype(np.int64)
        if self.timestep_spacing == "leading":
            return (np.arange(0, k) * (n // k)).round()[::-1].astype(np.int64) + self.steps_offset
        return np.round(np.arange(n, 0, -n / k)).astype(np.int64) - 1


@dataclasses.dataclass(frozen=True)
class VESchedulerConfig:
    """diffusers' ``ScoreSdeVeScheduler`` arguments (score-SDE predictor-corrector)."""

    num_train_timesteps: int = 2000
    snr: float = 0.15
    sigma_min: float = 0.01
    sigma_max: float = 1348.0
    sampling_eps: float = 1e-5
    correct_steps: int = 1

    def __post_init__(self) -> None:
        _check_int("num_train_timesteps", self.num_train_timesteps, 1)
        _check_int("correct_steps", self.correct_steps, 0)
        _check_range("snr", self.snr, 0.0, math.inf)
        _check_range("sigma_min", self.sigma_min, 0.0, math.inf)
        _check_range("sigma_max", self.sigma_max, self.sigma_min, math.inf)
        _check_range("sampling_eps", self.sampling_eps, 0.0, 1.0)

    def timesteps(self, num_inference_steps: int) -> np.ndarray:
        """``linspace(1, sampling_eps, N)`` in float32."""
        return np.linspace(1.0, self.sampling_eps, num_inference_steps).astype(np.float32)

    def sigmas(self, num_inference_steps: int) -> np.ndarray:
        """Noise levels the network is evaluated at: ``sigma_min (sigma_max/sigma_min)^t_i``."""
        t = self.timesteps(num_inference_steps).astype(np.float64)
        return (self.sigma_min * (self.sigma_max / self.sigma_min) ** t).astype(np.float32)

    def discrete_sigmas(self, num_inference_steps: int) -> np.ndarray:
        """``exp(linspace(log sigma_min, log sigma_max, N))`` (float32), used by the predictor."""
        grid = np.linspace(math.log(self.sigma_min), math.log(self.sigma_max), num_inference_steps)
        return np.exp(grid.astype(np.float32)).astype(np.float32)

    def predictor_indices(self, num_inference_steps: int) -> np.ndarray:
        """Index into ``discrete_sigmas`` at step ``i``: diffusers' ``long(t_i (N - 1))`` =
        ``N-1-i``.

        ``t_i (N-1) = N-1-i + i eps`` exactly; tests check the float32 value floors to ``N-1-i``.
        """
        return np.arange(num_inference_steps - 1, -1, -1, dtype=np.int64)


def _check_int(name: str, value: Any, minimum: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise InvalidConfig(f"{name}: {value!r}, need an integer >= {minimum}")


def _check_range(name: str, value: Any, low: float, high: float) -> None:
    """``low < value < high`` for a real ``value``; else ``InvalidConfig`` naming the range."""
    real = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not real or not low < value < high:
        raise InvalidConfig(f"{name}: {value!r}, need a number in ({low:g}, {high:g})")


# DDPMScheduler of google/ddpm-celebahq-256 (shared/CELEBA.md: public copies of its scheduler
# config, same as ddpm-cat-256/church-256): 1000 steps, linear 1e-4..0.02, fixed_small, clipped.
DDPM_CELEBAHQ_SCHEDULER = DDPMSchedulerConfig()

# ScoreSdeVeScheduler of google/ncsnpp-celebahq-256 (shared/CELEBA.md): sigma_min 0.01,
# snr 0.075, sampling_eps 1e-5, 2000 train steps; sigma_max 380 in the diffusers scheduler
# config, 348 in score_sde's configs/ve/celebahq_256_ncsnpp_continuous.py (pass sigma_max=348).
VE_CELEBAHQ_SCHEDULER = VESchedulerConfig(snr=0.075, sigma_min=0.01, sigma_max=380.0)


def load_scheduler_config(path: str | Path) -> DDPMSchedulerConfig | VESchedulerConfig:
    """A ``scheduler_config.json`` (DDPMScheduler or ScoreSdeVeScheduler) as a config object.

    Bad content raises ``CheckpointError`` (``InvalidConfig``, ``UnsupportedOption``) whose
    message starts with ``path`` and names the field and its allowed values.
    """
    path = Path(path)
    data = read_json(path)
    if not isinstance(data, dict):
        raise InvalidConfig(f"{path}: must be a JSON object, got {type(data).__name__}", file=path)
    cls_name = data.get("_class_name")
    cls: type[DDPMSchedulerConfig] | type[VESchedulerConfig]
    if cls_name == "DDPMScheduler":
        cls = DDPMSchedulerConfig
    elif cls_name == "ScoreSdeVeScheduler":
        cls = VESchedulerConfig
    else:
        raise UnsupportedOption(
            f"{path}: _class_name {cls_name!r} (DDPMScheduler or ScoreSdeVeScheduler)", file=path
        )
    known = {f.name for f in dataclasses.fields(cls)}
    extra = {k: v for k, v in data.items() if k not in known and not k.startswith("_")}
    ignorable = {
        "trained_betas",
        "thresholding",
        "dynamic_thresholding_ratio",
        "sample_max_value",
        "rescale_betas_zero_snr",
    }
    bad = {k: v for k, v in extra.items() if k not in ignorable or v not in (None, False)}
    bad = {
        k: v for k, v in bad.items() if k not in ("dynamic_thresholding_ratio", "sample_max_value")
    }
    if bad:
        raise UnsupportedOption(f"{path}: scheduler options not supported: {bad}", file=path)
    try:
        return cls(**{k: v for k, v in data.items() if k in known})
    except CheckpointError as err:
        raise type(err)(f"{path}: {err}", file=path, case=err.case) from err
