"""Systems: what one particle of a probability-flow solve is (docs/theory.md §1).

A system gives the state at the start (pure noise), the velocity ``b(tau, state)`` of the
interpolant, the posterior mean ``eta(tau, state)`` (for the final denoising step of schedules that
stop short of ``tau = 1``), per-particle statistics and a low-dimensional path summary.
:func:`nsjax.solve` integrates any system; :class:`Particles` wraps a target's full
``d``-dimensional particles; :class:`nsjax.reduction.ReducedGM` is the exact GM reduction;
flax_celeba wraps an image denoiser network.
"""

from __future__ import annotations

import abc
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp

from ._types import Array, PRNGKeyArray
from .interpolants import AbstractInterpolant
from .targets.base import AbstractTarget

__all__ = ["AbstractSystem", "Particles", "as_system"]


class AbstractSystem(eqx.Module):
    """A per-particle ODE system driven by an interpolant's velocity."""

    @abc.abstractmethod
    def init(self, key: PRNGKeyArray, scale: Array, dtype) -> Any:
        """One particle at the start: pure noise ``scale * z``, ``scale = c alpha(tau(0))``."""

    @abc.abstractmethod
    def velocity(self, interpolant: AbstractInterpolant, tau, tau_c, state) -> Any:
        """``b(tau, state)``."""

    @abc.abstractmethod
    def denoise(self, interpolant: AbstractInterpolant, tau, tau_c, state) -> Any:
        """``eta(tau, state)`` in state coordinates (the final denoising step)."""

    def statistics(self, state) -> dict[str, Array]:
        """Per-particle feature statistics (the target's :meth:`~AbstractTarget.statistics`)."""
        raise NotImplementedError(f"{type(self).__name__} defines no feature statistics")

    def summary(self, state, num_coords: int) -> dict[str, Array]:
        """Low-dimensional path summary: ``overlap`` (``M_t``) and the first coordinates."""
        raise NotImplementedError(f"{type(self).__name__} defines no path summary")

    def bytes_per_particle(self, itemsize: int, stages: int) -> int:
        """Working memory of one particle during a solve (sets :func:`nsjax.sample`'s chunks)."""
        raise NotImplementedError(f"{type(self).__name__} gives no memory estimate")

    def with_dtype(self, dtype) -> AbstractSystem:
        """A copy whose floating-point parameters are cast to ``dtype`` (default: itself)."""
        return self

    def finite(self, state) -> Array:
        """Whether every entry of ``state`` is finite."""
        leaves = jax.tree.leaves(state)
        return jnp.all(jnp.stack([jnp.all(jnp.isfinite(leaf)) for leaf in leaves]))


class Particles(AbstractSystem):
    """Full ``d``-dimensional particles of a target (state: ``x`` of shape ``(d,)``)."""

    target: AbstractTarget

    def init(self, key, scale, dtype):
        return scale * jax.random.normal(key, (self.target.dim,), dtype)

    def velocity(self, interpolant, tau, tau_c, state):
        return self.target.velocity(interpolant, tau, tau_c, state)

    def denoise(self, interpolant, tau, tau_c, state):
        return self.target.denoise(interpolant, tau, tau_c, state)[0]

    def statistics(self, state):
        return self.target.statistics(state)

    def summary(self, state, num_coords):
        out = {"overlap": self.target.order_parameter(state)}
        if num_coords:
            out["coords"] = state[:num_coords]
        return out

    def bytes_per_particle(self, itemsize, stages):
        return self.target.dim * itemsize * (stages + 4)

    def with_dtype(self, dtype):
        return Particles(self.target.with_dtype(dtype))


def as_system(target_or_system: AbstractTarget | AbstractSystem) -> AbstractSystem:
    """Wrap a target into :class:`Particles`; pass systems through."""
    if isinstance(target_or_system, AbstractSystem):
        return target_or_system
    if isinstance(target_or_system, AbstractTarget):
        return Particles(target_or_system)
    raise TypeError(
        f"target must be an nsjax target or system, got {type(target_or_system).__name__}"
    )
