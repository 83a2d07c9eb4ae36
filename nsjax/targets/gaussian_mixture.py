"""Two-mode Gaussian mixture ``mu = p N(r, s2 I) + (1 - p) N(-r, s2 I)`` (docs/theory.md §2)."""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import ndtr

from .._checks import check_dim, check_positive, check_range, check_scalar
from .._types import Array, Float, PRNGKeyArray
from ..features import Feature
from ..interpolants import AbstractInterpolant
from ._sums import coordinate_sum
from .base import AbstractTarget

__all__ = ["GaussianMixture"]


class GaussianMixture(AbstractTarget):
    """``mu = p N(r, sigma2 I_d) + (1 - p) N(-r, sigma2 I_d)``.

    ``direction=None`` means ``r = (1, ..., 1)``, never materialised (``r.x = sum(x)``), so
    ``|r|^2 = d``. The mode weight ``p`` is the high-level feature, the per-mode variance
    ``sigma2`` the low-level one.

    Args:
        dim: ``d >= 1``.
        p: weight of the ``+r`` mode, in ``(0, 1)``.
        sigma2: per-mode variance ``> 0``.
        direction: optional ``r`` of shape ``(d,)``.
    """

    dim: int = eqx.field(static=True)
    p: Float[Array, ""] | float = 0.8
    sigma2: Float[Array, ""] | float = 0.25
    direction: Float[Array, " dim"] | None = None

    def __check_init__(self):
        check_dim("dim", self.dim)
        check_scalar("p", check_range("p", self.p, 0.0, 1.0), "(0, 1)")
        check_scalar("sigma2", check_positive("sigma2", self.sigma2), "(0, inf)")
        if self.direction is not None:
            if jnp.shape(self.direction) != (self.dim,):
                raise ValueError(
                    f"direction must have shape (dim,) = ({self.dim},), got {jnp.shape(self.direction)}"
                )
            if not isinstance(self.direction, jax.core.Tracer):
                r = np.asarray(self.direction, dtype=np.float64)
                if not (np.all(np.isfinite(r)) and np.any(r != 0)):
                    raise ValueError(
                        "direction must be a finite nonzero vector (entries in (-inf, inf), "
                        f"|r| > 0), got {r.tolist()}"
                    )

    # -- the direction r -------------------------------------------------------------------
    def r_dot(self, x: Float[Array, " dim"]) -> Float[Array, ""]:
        """``r . x`` (:func:`coordinate_sum`: XLA fuses the computation of ``x`` into it)."""
        return coordinate_sum(x if self.direction is None else self.direction * x)

    def r_times(self, s: Float[Array, ""]) -> Float[Array, " dim"]:
        """``s r`` (broadcastable against a particle)."""
        return s if self.direction is None else s * self.direction

    @property
    def r_norm2(self) -> Float[Array, ""] | float:
        """``|r|^2``."""
        return float(self.dim) if self.direction is None else jnp.sum(self.direction**2)

    @property
    def field(self) -> Float[Array, ""]:
        """``h = (1/2) log(p / (1 - p))``."""
        return 0.5 * (jnp.log(self.p) - jnp.log1p(-self.p))

    # -- exact posterior ------------------------------------------------------------------------
    def variance(self, interpolant: AbstractInterpolant, tau, tau_c):
        """``D(tau) = c^2 alpha^2 + sigma2 beta^2``: the per-mode variance of ``rho_tau``."""
        alpha, beta = interpolant.alpha(tau, tau_c), interpolant.beta(tau, tau_c)
        return interpolant.noise_scale**2 * alpha**2 + self.sigma2 * beta**2

    def posterior_parts(self, interpolant: AbstractInterpolant, tau, tau_c, r_dot_x):
        """Coefficients of the exact posterior along ``x`` and ``r`` (docs/theory.md §2)::

            eta   = (s2 beta / D) x + (c^2 alpha^2 / D) tanh(h + beta r.x / D) r
            score = (-1 / D) x      + (beta / D)        tanh(h + beta r.x / D) r

        Returns ``(eta_x, eta_r, score_x, score_r)``; all finite at ``tau = 1`` (``D = s2``).
        The full-``d`` denoiser and the exact reduction (:mod:`nsjax.reduction`) both use it.
        """
        alpha, beta = interpolant.alpha(tau, tau_c), interpolant.beta(tau, tau_c)
        c2a2 = interpolant.noise_scale**2 * alpha**2
        D = c2a2 + self.sigma2 * beta**2
        mode = jnp.tanh(self.field + beta * r_dot_x / D)
        return self.sigma2 * beta / D, c2a2 / D * mode, -1 / D, beta / D * mode

    def denoise(self, interpolant, tau, tau_c, x):
        """Exact posterior mean and score (:meth:`posterior_parts`)."""
        eta_x, eta_r, score_x, score_r = self.posterior_parts(interpolant, tau, tau_c, self.r_dot(x))
        return eta_x * x + self.r_times(eta_r), score_x * x + self.r_times(score_r)

    def log_density(self, interpolant: AbstractInterpolant, tau, tau_c, x) -> Float[Array, ""]:
        """``log rho_tau(x)`` for ``rho_tau = p N(beta r, D I) + (1 - p) N(-beta r, D I)``."""
        beta = interpolant.beta(tau, tau_c)
        D = self.variance(interpolant, tau, tau_c)
        r = self.r_times(jnp.ones_like(x))
        norm = -0.5 * self.dim * jnp.log(2 * jnp.pi * D)
        plus = jnp.log(self.p) - jnp.sum((x - beta * r) ** 2) / (2 * D)
        minus = jnp.log1p(-self.p) - jnp.sum((x + beta * r) ** 2) / (2 * D)
        return norm + jnp.logaddexp(plus, minus)

    # -- exact samples and references -----------------------------------------------------------
    def sample(self, key: PRNGKeyArray, num: int) -> Float[Array, "num dim"]:
        """``x1 = s r + sqrt(sigma2) z`` with ``P(s = +1) = p``."""
        key_mode, key_noise = jax.random.split(key)
        sign = jnp.where(jax.random.bernoulli(key_mode, self.p, (num, 1)), 1.0, -1.0)
        r = self.r_times(jnp.ones((self.dim,)))
        noise = jax.random.normal(key_noise, (num, self.dim))
        return sign * r + jnp.sqrt(self.sigma2) * noise

    def reference(self) -> dict[str, float]:
        """Exact finite-``d`` features of ``mu`` (derived for this project).

        With ``R = |r|``, ``s = sqrt(sigma2)`` and ``u = r.x / R``::

            p_ref      = P(r.x > 0) = p Phi(R/s) + (1 - p) Phi(-R/s)
            sigma2_ref = E|x - sign(r.x) r|^2 / d = s2 + 4 R (R Phi(-R/s) - s phi(R/s)) / d
        """
        R = math.sqrt(float(self.r_norm2))
        s = math.sqrt(float(self.sigma2))
        p = float(self.p)
        z = R / s
        Phi_minus = float(ndtr(-z))
        phi = math.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)
        p_ref = p * (1 - Phi_minus) + (1 - p) * Phi_minus
        sigma2_ref = s * s + 4 * R * (R * Phi_minus - s * phi) / self.dim
        return {"p": p_ref, "sigma2": sigma2_ref}

    # -- observables (docs/theory.md §6) ---------------------------------------------------------
    def statistics(self, x: Float[Array, " dim"]) -> dict[str, Float[Array, ""]]:
        """``{"overlap": r.x / |r|^2, "sq_dev": |x - sign(r.x) r|^2 / d}`` for one particle.

        ``overlap`` is ``M = r.X/d`` of docs/theory.md when ``|r|^2 = d``.
        """
        rx = self.r_dot(x)
        sign = jnp.where(rx > 0, 1.0, -1.0)
        sq_dev = jnp.sum((x - self.r_times(sign)) ** 2) / self.dim
        return {"overlap": rx / self.r_norm2, "sq_dev": sq_dev}

    def order_parameter(self, x: Float[Array, " dim"]) -> Float[Array, ""]:
        """``M = r.x / |r|^2``."""
        return self.r_dot(x) / self.r_norm2

    def features(self, stats: dict[str, np.ndarray]) -> dict[str, Feature]:
        """``p``: values ``1[r.x > 0]``, absolute error; ``sigma2``: values ``sq_dev``, relative error."""
        ref = self.reference()
        return {
            "p": Feature(np.asarray(stats["overlap"]) > 0, ref["p"], relative=False),
            "sigma2": Feature(np.asarray(stats["sq_dev"]), ref["sigma2"], relative=True),
        }
