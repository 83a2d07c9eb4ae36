"""A network checkable by hand: nsjax's exact Gaussian-mixture denoiser in image shape.

``gm_network`` wraps ``nsjax.targets.GaussianMixture`` (``d = C H W``, modes ``±r``) in the
diffusers network interface ``(sample NCHW, timestep (B,)) -> NCHW``, either as an
epsilon-prediction model at (real-valued) DDPM timesteps or as a VE score model at ``sigma``.
The image samplers run on it must reproduce the nsjax engine (docs/theory.md §2, §6), which validates
the image pipeline end to end.

Both wrappers reduce to the exact posterior mean of the linear interpolant with ``c = 1``: a
process ``x = a x1 + s z`` equals ``(a + s) I_tau`` with ``tau = a/(a + s)``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.tree_util import Partial

from nsjax.interpolants import Linear
from nsjax.targets.gaussian_mixture import GaussianMixture

from .schedulers import DDPMSchedulerConfig

__all__ = ["gm_network", "gm_features"]

Array = jax.Array


def _posterior_mean(target: GaussianMixture, a: Array, s: Array, x: Array) -> Array:
    """``E[x1 | a x1 + s z = x]`` for ``x`` (B, C, H, W) and per-sample ``a``, ``s`` (B,)."""
    interpolant = Linear(1.0)
    flat = x.reshape(x.shape[0], -1)

    def one(a, s, xb):
        norm = a + s
        eta, _ = target.denoise(interpolant, a / norm, s / norm, xb / norm)
        return eta

    return jax.vmap(one)(a, s, flat).reshape(x.shape)


def _eps_model(target: GaussianMixture, log_snr_table: Array, sample: Array, timestep: Array):
    n = jnp.broadcast_to(jnp.asarray(timestep, sample.dtype), sample.shape[:1])
    index = jnp.arange(log_snr_table.shape[0], dtype=sample.dtype)
    lam = jnp.interp(n, index, log_snr_table.astype(sample.dtype))
    a, s = jnp.sqrt(jax.nn.sigmoid(lam)), jnp.sqrt(jax.nn.sigmoid(-lam))
    eta = _posterior_mean(target, a, s, sample)
    return (sample - a[:, None, None, None] * eta) / s[:, None, None, None]


def _score_model(target: GaussianMixture, sample: Array, timestep: Array):
    sigma = jnp.broadcast_to(jnp.asarray(timestep, sample.dtype), sample.shape[:1])
    eta = _posterior_mean(target, jnp.ones_like(sigma), sigma, sample)
    return (eta - sample) / (sigma**2)[:, None, None, None]


def gm_network(
    target: GaussianMixture,
    parameterization: str,
    scheduler: DDPMSchedulerConfig | None = None,
) -> Partial:
    """The exact GM as a diffusers-style network (a pytree callable).

    Args:
        target: ``GaussianMixture(dim=C*H*W, ...)``.
        parameterization: ``"epsilon"`` (timestep = DDPM index, ``abar`` from ``scheduler``'s
            log-SNR table, linear in between integers, as :class:`LevelDenoiser` inverts it) or
            ``"score"`` (timestep = ``sigma``).
    """
    if parameterization == "epsilon":
        scheduler = scheduler or DDPMSchedulerConfig()
        table = jnp.asarray(scheduler.log_snr())
        return Partial(_eps_model, target, table)
    if parameterization == "score":
        return Partial(_score_model, target)
    raise ValueError(f"parameterization must be 'epsilon' or 'score', got {parameterization!r}")


def gm_features(x: Array, target: GaussianMixture) -> dict[str, Array]:
    """docs/theory.md §6 on images (B, C, H, W): ``p_hat = mean 1[r.X > 0]``,
    ``sigma2_hat = mean |X - sign(r.X) r|^2 / d`` (per-image statistics of nsjax.features)."""
    stats = jax.vmap(target.statistics)(x.reshape(x.shape[0], -1))
    return {"p_hat": jnp.mean(stats["overlap"] > 0), "sigma2_hat": jnp.mean(stats["sq_dev"])}
