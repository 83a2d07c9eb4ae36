"""The target interface: an exact denoiser, exact samples, exact feature references."""

from __future__ import annotations

import abc

import equinox as eqx
import jax

from .._types import Array, Float, PRNGKeyArray
from ..interpolants import AbstractInterpolant

__all__ = ["AbstractTarget"]


class AbstractTarget(eqx.Module):
    """A data distribution ``mu`` on ``R^d`` with its exact posterior quantities."""

    dim: eqx.AbstractVar[int]

    @abc.abstractmethod
    def denoise(
        self,
        interpolant: AbstractInterpolant,
        tau: Float[Array, ""],
        tau_c: Float[Array, ""],
        x: Float[Array, " dim"],
    ) -> tuple[Float[Array, " dim"], Float[Array, " dim"]]:
        """``(eta, score)`` at one point: ``eta = E[x1 | I_tau = x]``, ``score = grad log rho_tau``."""

    @abc.abstractmethod
    def sample(self, key: PRNGKeyArray, num: int) -> Float[Array, "num dim"]:
        """``num`` exact samples of ``mu``."""

    @abc.abstractmethod
    def reference(self) -> dict[str, float]:
        """Exact finite-``d`` values of the features (MATH.md §6)."""

    def velocity(
        self,
        interpolant: AbstractInterpolant,
        tau: Float[Array, ""],
        tau_c: Float[Array, ""],
        x: Float[Array, " dim"],
    ) -> Float[Array, " dim"]:
        """``b(tau, x) = beta' eta - c^2 alpha alpha' score`` (MATH.md §1)."""
        eta, score = self.denoise(interpolant, tau, tau_c, x)
        return interpolant.velocity(tau, tau_c, x, eta, score)

    def with_dtype(self, dtype) -> AbstractTarget:
        """A copy whose floating-point array leaves are cast to ``dtype``."""
        return jax.tree.map(lambda leaf: leaf.astype(dtype) if eqx.is_inexact_array(leaf) else leaf, self)
