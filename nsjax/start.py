"""Where a solve starts when the schedule's ``tau_min = tau(0)`` is not 0 (docs/theory.md §5).

Standard schedules mapped by signal-to-noise matching start at ``tau_min > 0`` (DDPM:
``tau_min = sqrt(abar_T) / (sqrt(abar_T) + sqrt(1 - abar_T)) ~ 6.6e-3``, so the dropped signal
along a unit direction of norm ``sqrt(d)`` is ``tau_min sqrt(d) ~ 2.9`` at ``d = 3 * 256^2``).
Two starts (:data:`STARTS`):

- ``"noise"`` (what diffusion samplers ship): ``X(0) = c alpha(tau_min) z``, the signal
  ``beta(tau_min) x1`` dropped (exact only when ``tau_min = 0``);
- ``"marginal"``: the exact law of the interpolant at ``tau_min``,
  ``X(0) = beta(tau_min) x1 + c alpha(tau_min) z`` with ``x1`` from the target.

:func:`with_start` turns a system into one that starts as asked; :func:`nsjax.solve` passes the
scale ``c alpha(tau_min)`` to ``system.init`` and the wrapper adds the signal. For the exact GM
reduction (:class:`~nsjax.reduction.ReducedGM`) the marginal is sampled in reduced coordinates:
``u(0) = beta s |r| + sqrt(D) xi``, ``q = D chi^2_{d-1}``, ``D = c^2 alpha^2 + sigma^2 beta^2``,
``P(s = +1) = p``; for stratified quantiles (:class:`~nsjax.sweeps.QuantileReducedGM`) ``u(0)``
is the inverse CDF of that two-component law at ``Phi(z)`` (exactly ``sqrt(D) z`` when
``beta = 0``) and ``q`` is at its mean ``D (d - 1)``.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from jax.scipy.special import ndtr

from ._types import Array, Float
from .interpolants import AbstractInterpolant
from .reduction import ReducedGM, ReducedState
from .schedules import AbstractSchedule
from .sweeps import QuantileReducedGM
from .systems import AbstractSystem, Particles, as_system

__all__ = ["STARTS", "MarginalStart", "start_signal", "with_start", "check_start"]

STARTS = ("noise", "marginal")
_BISECTIONS = 80  # the bracket [z - mu, z + mu] shrinks 2^-80 times: below float64 rounding


def check_start(start: Any) -> str:
    """``start`` if it is one of :data:`STARTS`, else ``ValueError`` naming the choices."""
    if not isinstance(start, str) or start not in STARTS:
        raise ValueError(f"start must be one of {STARTS}, got {start!r}")
    return start


def start_signal(interpolant: AbstractInterpolant, schedule: AbstractSchedule) -> Float[Array, ""]:
    """``beta(tau_min)``: the signal coefficient of the interpolant at the schedule's start
    ``tau_min = tau(0)`` (0 for schedules that start at pure noise)."""
    start = schedule.evaluate(jnp.zeros(()), 0)
    return interpolant.beta(start.tau, start.tau_c)


class MarginalStart(AbstractSystem):
    """``system`` started from the interpolant's exact law at ``tau_min``:
    ``X(0) = signal x1 + scale z`` with ``signal = beta(tau_min)`` and ``scale = c alpha(tau_min)``
    (given by :func:`nsjax.solve`). ``signal`` may be traced (0: the pure-noise start).

    Supported systems: :class:`~nsjax.reduction.ReducedGM` (and its quantile form) and
    :class:`~nsjax.systems.Particles` of any target with an exact ``sample``.
    """

    system: AbstractSystem
    signal: Float[Array, ""] | float

    def __check_init__(self):
        if not isinstance(self.system, (ReducedGM, Particles)):
            raise TypeError(
                "MarginalStart needs a ReducedGM or Particles system (a target with exact samples), "
                f"got {type(self.system).__name__}"
            )

    def init(self, key, scale, dtype):
        system, signal = self.system, jnp.asarray(self.signal, dtype)
        scale = jnp.asarray(scale, dtype)
        if isinstance(system, Particles):
            key_x1, key_z = jax.random.split(key)
            x1 = system.target.sample(key_x1, 1)[0].astype(dtype)
            return signal * x1 + scale * jax.random.normal(key_z, x1.shape, dtype)
        target = system.target
        p, sigma2 = jnp.asarray(target.p, dtype), jnp.asarray(target.sigma2, dtype)
        variance = scale**2 + sigma2 * signal**2  # D(tau_min) = c^2 alpha^2 + sigma^2 beta^2
        sd = jnp.sqrt(variance)
        mean = signal * jnp.asarray(system.r_norm, dtype)  # beta |r|
        dof = jnp.maximum(jnp.asarray(system.dimension, dtype) - 1, 0)
        if isinstance(system, QuantileReducedGM):
            y = _mixture_quantile(jnp.asarray(key, dtype), mean / sd, p)
            u = sd * y
            return ReducedState(u, 1 + 0 * u, variance * dof)
        key_s, key_u, key_q = jax.random.split(key, 3)
        sign = jnp.where(jax.random.bernoulli(key_s, p), 1.0, -1.0).astype(dtype)
        u = sign * mean + sd * jax.random.normal(key_u, (), dtype)
        gamma = jax.random.gamma(key_q, jnp.maximum(dof, 1) / 2, (), dtype)
        return ReducedState(u, 1 + 0 * u, variance * jnp.where(dof > 0, 2 * gamma, 0.0))

    def velocity(self, interpolant, tau, tau_c, state):
        return self.system.velocity(interpolant, tau, tau_c, state)

    def denoise(self, interpolant, tau, tau_c, state):
        return self.system.denoise(interpolant, tau, tau_c, state)

    def statistics(self, state):
        return self.system.statistics(state)

    def summary(self, state, num_coords):
        return self.system.summary(state, num_coords)

    def bytes_per_particle(self, itemsize, stages):
        return self.system.bytes_per_particle(itemsize, stages)

    def with_dtype(self, dtype):
        return MarginalStart(self.system.with_dtype(dtype), self.signal)

    def finite(self, state):
        return self.system.finite(state)


def _mixture_quantile(z, mu, p):
    """``y`` with ``p Phi(y - mu) + (1 - p) Phi(y + mu) = Phi(z)`` (bisection on
    ``[z - mu, z + mu]``, which brackets the root since ``Phi(y - mu) <= F(y) <= Phi(y + mu)``;
    ``mu = 0`` gives ``y = z`` exactly)."""
    target = ndtr(z)

    def body(_, bounds):
        lo, hi = bounds
        mid = (lo + hi) / 2
        below = p * ndtr(mid - mu) + (1 - p) * ndtr(mid + mu) < target
        return jnp.where(below, mid, lo), jnp.where(below, hi, mid)

    lo, hi = jax.lax.fori_loop(0, _BISECTIONS, body, (z - mu, z + mu))
    return (lo + hi) / 2


def with_start(
    system: AbstractSystem | Any,
    interpolant: AbstractInterpolant,
    schedule: AbstractSchedule,
    start: str = "noise",
) -> AbstractSystem:
    """``system`` (or a target) set to start as ``start`` says (:data:`STARTS`).

    ``"noise"``: the system itself (pure noise ``c alpha(tau_min) z``, the shipped behaviour);
    ``"marginal"``: :class:`MarginalStart` with ``signal = beta(tau_min)``, the exact law at
    ``tau_min`` (the same as ``"noise"`` when ``tau_min = 0``).
    """
    check_start(start)
    system = as_system(system)
    if start == "noise":
        return system
    return MarginalStart(system, start_signal(interpolant, schedule))
