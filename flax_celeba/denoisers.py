"""A diffusers-style network as a denoiser at any signal-to-noise ratio (docs/theory.md §5).

Every network here has diffusers' interface ``network(sample NCHW, timestep (B,)) -> NCHW`` and
one of two parameterisations:

- ``"epsilon"`` (google/ddpm-celebahq-256): ``timestep`` is a DDPM index ``n`` (real-valued
  allowed), ``x_n = sqrt(abar_n) x1 + sqrt(1 - abar_n) z`` and the output estimates ``z``;
- ``"score"`` (google/ncsnpp-celebahq-256): ``timestep`` is ``sigma``, ``x = x1 + sigma z`` and
  the output estimates ``grad log p_sigma(x) = -E[z | x] / sigma``.

:class:`LevelDenoiser` turns either into ``(eta, eps) = (E[x1 | x], E[z | x])`` for a
*VP-normalised* input ``x = a x1 + s z``, ``a^2 + s^2 = 1``, at log-SNR ``lambda = log(a^2/s^2)``.
Levels outside the network's trained range ``[log_snr_min, log_snr_max]`` are clamped to it: the
network then sees its own extreme level, which is what DDPM and score-SDE samplers do at their
first and last step.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp

from .schedulers import DDPMSchedulerConfig

__all__ = ["LevelDenoiser", "ddpm_denoiser", "ve_denoiser"]

Array = jax.Array
Network = Callable[[Array, Array], Array]


class LevelDenoiser(eqx.Module):
    """``(x, log_snr) -> (eta, eps)`` for ``x = a x1 + s z`` with ``a = sigmoid(lambda)^(1/2)``.

    Build with :func:`ddpm_denoiser` or :func:`ve_denoiser`. ``network`` must be a pytree callable
    (e.g. ``jax.tree_util.Partial``) so that its parameters are traced, not baked in.
    """

    network: Network
    parameterization: str = eqx.field(static=True)
    log_snr_min: float = eqx.field(static=True)
    log_snr_max: float = eqx.field(static=True)
    log_snr_table: Array | None = None  # epsilon: log-SNR of DDPM index n = 0..T-1 (decreasing)

    def level(self, log_snr: Array) -> Array:
        """The network's ``timestep`` argument at (clamped) log-SNR ``lambda``.

        epsilon: the real index ``n`` interpolating ``lambda`` linearly between the integer
        timesteps' log-SNRs; score: ``sigma = exp(-lambda/2)``.
        """
        lam = jnp.clip(log_snr, self.log_snr_min, self.log_snr_max)
        if self.parameterization == "epsilon":
            table = self.log_snr_table.astype(lam.dtype)
            index = jnp.arange(table.shape[0], dtype=lam.dtype)
            return jnp.interp(-lam, -table, index)
        return jnp.exp(-lam / 2)

    def __call__(self, x: Array, log_snr: Array) -> tuple[Array, Array]:
        """``(E[x1 | x], E[z | x])`` for a batch ``x`` (B, C, H, W) at per-sample log-SNR (B,)."""
        lam = jnp.clip(jnp.broadcast_to(log_snr, x.shape[:1]), self.log_snr_min, self.log_snr_max)
        lam = lam.astype(x.dtype)
        a = jnp.sqrt(jax.nn.sigmoid(lam))[:, None, None, None]
        s = jnp.sqrt(jax.nn.sigmoid(-lam))[:, None, None, None]
        level = self.level(lam)
        if self.parameterization == "epsilon":
            eps = self.network(x, level)
            return (x - s * eps) / a, eps
        sigma = level[:, None, None, None]  # VE coordinates: y = x / a = x1 + sigma z
        y = x / a
        score = self.network(y, level)
        return y + sigma**2 * score, -sigma * score


def ddpm_denoiser(network: Network, scheduler: DDPMSchedulerConfig) -> LevelDenoiser:
    """An epsilon-prediction network at DDPM timesteps, over ``scheduler``'s trained range."""
    table = scheduler.log_snr()
    return LevelDenoiser(network, "epsilon", float(table[-1]), float(table[0]), jnp.asarray(table))


def ve_denoiser(network: Network, sigma_min: float, sigma_max: float) -> LevelDenoiser:
    """A VE score network at ``sigma`` in ``[sigma_min, sigma_max]`` (``lambda = -2 log sigma``)."""
    return LevelDenoiser(network, "score", -2 * math.log(sigma_max), -2 * math.log(sigma_min))
