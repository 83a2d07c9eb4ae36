"""Exact reduction of the GM flow to two scalars per particle (docs/theory.md §2, derived for this project).

The GM velocity is ``b(x) = A(tau) x + B(tau) r tanh(h + beta r.x / D)``. Writing
``x = u r/|r| + x_perp``: ``x_perp(t) = g(t) x_perp(0)`` with ``dg/dt = tau' A g``, and
``du/dt = tau' (A u + B |r| tanh(h + beta |r| u / D))``. Every explicit Runge–Kutta scheme maps
the ``d``-dimensional system exactly onto the same scheme for ``(u, g)``, so a particle is
``(u, g, q)`` with ``q = |x_perp(0)|^2``: ``u(0) ~ N(0, c^2)``, ``q ~ c^2 chi^2_{d-1}``. The
features are exact at any ``d`` (1e12 included) for O(1) work per particle, and the reduction
is an oracle for the full engine (``tests/test_reduction.py``).

:class:`ReducedGM` is a system for :func:`nsjax.solve` and :func:`nsjax.sample`: the same
schedule, grid, solver and chunking code path as the full engine.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from ._types import Array, Float
from .systems import AbstractSystem
from .targets.gaussian_mixture import GaussianMixture

__all__ = ["ReducedState", "ReducedGM"]


class ReducedState(NamedTuple):
    """One reduced particle: ``x = u r/|r| + g x_perp(0)``, ``q = |x_perp(0)|^2``."""

    u: Float[Array, ""]
    g: Float[Array, ""]
    q: Float[Array, ""]


class ReducedGM(AbstractSystem):
    """The exact ``(u, g)`` reduction of a :class:`GaussianMixture` flow.

    ``dim`` (optional, may be traced) overrides ``target.dim`` so that one compiled program
    can run many dimensions (:mod:`nsjax.sweeps`); it needs ``r = (1, ..., 1)``, ``|r|^2 = d``.
    """

    target: GaussianMixture
    dim: Float[Array, ""] | float | None = None

    def __check_init__(self):
        if self.dim is not None and self.target.direction is not None:
            raise ValueError("ReducedGM(dim=...) needs a target with direction=None (|r|^2 = d)")

    @property
    def dimension(self) -> Float[Array, ""] | float:
        """``d``: ``dim`` when given, else ``target.dim``."""
        return self.target.dim if self.dim is None else self.dim

    @property
    def r_norm(self):
        return jnp.sqrt(self.target.r_norm2 if self.dim is None else self.dim)

    def init(self, key, scale, dtype):
        key_u, key_q = jax.random.split(key)
        u = scale * jax.random.normal(key_u, (), dtype)
        dof = jnp.asarray(self.dimension, dtype) - 1
        gamma = jax.random.gamma(key_q, jnp.maximum(dof, 1) / 2, (), dtype)
        q = scale**2 * jnp.where(dof > 0, 2 * gamma, 0.0)
        return ReducedState(u, 1 + 0 * u, q)  # g batched like u under vmap: see tests/test_gradients.py

    def from_full(self, x: Float[Array, " dim"]) -> ReducedState:
        """The reduced coordinates of a full particle ``x`` (for oracle tests)."""
        u = self.target.r_dot(x) / self.r_norm
        x_perp = x - self.target.r_times(u / self.r_norm)
        return ReducedState(u, 1 + 0 * u, jnp.sum(x_perp**2))  # g batched like u (see init)

    def _parts(self, interpolant, tau, tau_c, state):
        return self.target.posterior_parts(interpolant, tau, tau_c, self.r_norm * state.u)

    def velocity(self, interpolant, tau, tau_c, state):
        eta_x, eta_r, score_x, score_r = self._parts(interpolant, tau, tau_c, state)
        du = interpolant.velocity(
            tau, tau_c, state.u, eta_x * state.u + eta_r * self.r_norm,
            score_x * state.u + score_r * self.r_norm,
        )
        dg = interpolant.velocity(tau, tau_c, state.g, eta_x * state.g, score_x * state.g)
        return ReducedState(du, dg, jnp.zeros_like(state.q))

    def denoise(self, interpolant, tau, tau_c, state):
        eta_x, eta_r, _, _ = self._parts(interpolant, tau, tau_c, state)
        return ReducedState(eta_x * state.u + eta_r * self.r_norm, eta_x * state.g, state.q)

    def statistics(self, state):
        """Same keys as :meth:`GaussianMixture.statistics`, from ``(u, g, q)``."""
        R = self.r_norm
        sign = jnp.where(state.u > 0, 1.0, -1.0)
        sq_dev = ((state.u - sign * R) ** 2 + state.g**2 * state.q) / self.dimension
        return {"overlap": state.u / R, "sq_dev": sq_dev}

    def summary(self, state, num_coords):
        return {"overlap": state.u / self.r_norm}

    def bytes_per_particle(self, itemsize, stages):
        return 3 * itemsize * (stages + 4)
