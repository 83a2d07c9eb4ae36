"""The target interface: an exact denoiser, exact samples, its observables and their exact
finite-``d`` references.

A target owns its observables: per-particle ``statistics`` (computed inside the sampler), a
low-dimensional ``order_parameter`` (the path summary ``M_t``), and host-side ``features`` that
:func:`nsjax.features.estimate` averages. A new target is one module implementing this class.
"""

from __future__ import annotations

import abc
from typing import TYPE_CHECKING

import equinox as eqx
import jax
import numpy as np

from .._types import Array, Float, PRNGKeyArray
from ..interpolants import AbstractInterpolant

if TYPE_CHECKING:
    from ..features import Feature

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
        """Exact finite-``d`` values of the features (docs/theory.md §6)."""

    @abc.abstractmethod
    def statistics(self, x: Float[Array, " dim"]) -> dict[str, Float[Array, ""]]:
        """Per-particle scalar statistics of one particle (jit/vmap friendly)."""

    @abc.abstractmethod
    def order_parameter(self, x: Float[Array, " dim"]) -> Float[Array, "..."]:
        """The low-dimensional path summary ``M_t`` of one particle."""

    @abc.abstractmethod
    def features(self, stats: dict[str, np.ndarray]) -> dict[str, Feature]:
        """Host-side features from the statistics of an ensemble (particle axis first, finite):
        per-particle values whose mean estimates each feature, with its exact reference."""

    def velocity(
        self,
        interpolant: AbstractInterpolant,
        tau: Float[Array, ""],
        tau_c: Float[Array, ""],
        x: Float[Array, " dim"],
    ) -> Float[Array, " dim"]:
        """``b(tau, x) = beta' eta - c^2 alpha alpha' score`` (docs/theory.md §1)."""
        eta, score = self.denoise(interpolant, tau, tau_c, x)
        return interpolant.velocity(tau, tau_c, x, eta, score)

    def with_dtype(self, dtype) -> AbstractTarget:
        """A copy whose floating-point array leaves are cast to ``dtype``."""
        return jax.tree.map(lambda leaf: leaf.astype(dtype) if eqx.is_inexact_array(leaf) else leaf, self)
