"""Curie–Weiss spins ``mu(x1) ∝ exp(theta S^2 / (2d) + h S / d)`` on ``{-1, +1}^d`` (docs/theory.md §3)."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from scipy.special import gammaln

from .._checks import check_dim, check_positive, check_range
from .._types import Array, Float, PRNGKeyArray
from ..features import Feature
from ..interpolants import AbstractInterpolant
from .base import AbstractTarget
from .cw_posteriors import AbstractCWPosterior, as_posterior, magnetization

__all__ = ["CurieWeiss", "cw_features", "magnetization", "magnetization_law"]


def magnetization_law(dim: int, theta: float, h: float) -> tuple[np.ndarray, np.ndarray]:
    """Exact law of ``S = sum_i x1_i``: ``P(S = k) ∝ binom(d, (d+k)/2) exp(theta k^2/(2d) + h k/d)``.

    Returns ``(k, P(S = k))`` for ``k = -d, -d + 2, ..., d`` (float64, log-space normalised).
    """
    d = check_dim("dim", dim)
    n_plus = np.arange(d + 1, dtype=np.float64)
    k = 2 * n_plus - d
    log_w = (
        gammaln(d + 1.0) - gammaln(n_plus + 1) - gammaln(d - n_plus + 1) + theta * k**2 / (2 * d) + h * k / d
    )
    log_w -= log_w.max()
    w = np.exp(log_w)
    return k, w / w.sum()


def cw_features(stats: dict[str, np.ndarray], ref: dict[str, float]) -> dict[str, Feature]:
    """The CW features of per-particle ``stats`` (keys of :meth:`CurieWeiss.statistics`) against the
    references ``ref`` (keys of :meth:`CurieWeiss.reference`); see :meth:`CurieWeiss.features`."""
    mag = np.asarray(stats["magnetization"])
    return {
        "p": Feature(mag > 0, ref["p"], relative=False),
        "m_abs": Feature(np.abs(mag), ref["m_abs"], relative=True),
        "spread": Feature(np.asarray(stats["spread"]), ref["spread"], relative=True),
        "spin_error": Feature(np.asarray(stats["spin_error"]), ref["spin_error"], relative=False),
    }


class CurieWeiss(AbstractTarget):
    """Curie–Weiss model; the high-level feature is ``P(M > 0)``, the low-level ones ``E|M|``
    and the within-mode spread ``E[mean_i (x_i - M)^2] = 1 - E[M^2]`` (the CW analogue of the
    GM per-mode variance: constant VE sends it to 0).

    Args:
        dim: ``d >= 1``.
        theta: inverse temperature ``> 0`` (two modes for ``theta > 1``; paper: 2).
        h: field, favouring ``M > 0`` for ``h > 0`` (any real).
        posterior: the posterior-mean algorithm, a strategy of :mod:`nsjax.targets.cw_posteriors`
            (e.g. ``Saddle(nodes=8)``) or its name: ``"exact"`` (:class:`~.cw_posteriors.Exact`,
            Hubbard–Stratonovich with quadrature), ``"two-saddle"`` (the paper's approximation,
            needs ``theta > 1``), ``"grid"``, ``"saddle"``, ``"power-sum"``, ``"enumeration"``.
            Stored as the strategy; ``target.posterior.name`` is its name.
        nodes, newton_steps, grid_max_dim, grid_nodes, series_min_dim, series_terms, series_tol,
            max_passes: knobs of the default ``"exact"`` posterior (see
            :func:`~.cw_posteriors.as_posterior`); ``None`` keeps the strategy's default.
    """

    dim: int = eqx.field(static=True)
    theta: Float[Array, ""] | float
    h: Float[Array, ""] | float
    posterior: AbstractCWPosterior

    def __init__(
        self,
        dim: int,
        theta: Float[Array, ""] | float = 2.0,
        h: Float[Array, ""] | float = 0.0,
        posterior: str | AbstractCWPosterior = "exact",
        **knobs: int | float | None,
    ):
        self.dim = dim
        self.theta = theta
        self.h = h
        self.posterior = as_posterior(posterior, **knobs)  # knobs: see as_posterior

    def __check_init__(self):
        check_dim("dim", self.dim)
        check_positive("theta", self.theta)
        check_range("h", self.h)
        self.posterior.check(self.dim, self.theta)

    @property
    def m(self) -> Float[Array, ""]:
        """Mean-field magnetisation, ``m = tanh(theta m)``."""
        return magnetization(self.theta)

    def observation_field(self, interpolant: AbstractInterpolant, tau, tau_c):
        """``g = min(beta / (c^2 alpha^2), 1/(4 tiny))``: ``p(x | x1) ∝ exp(g x.x1)``; huge but
        finite at ``alpha = 0`` (``tanh(g x) = sign(x)``), with a zero tangent there: the cap is
        taken by ``where`` on the value and on a safe denominator, so forward-mode derivatives of
        a flow that reaches ``alpha = 0`` (Heun's last stage) stay finite."""
        alpha, beta = interpolant.alpha(tau, tau_c), interpolant.beta(tau, tau_c)
        c2a2 = interpolant.noise_scale**2 * alpha**2
        cap = 0.25 / jnp.finfo(jnp.result_type(c2a2)).tiny
        capped = c2a2 * cap <= beta
        return jnp.where(capped, cap, beta / jnp.where(capped, 1.0, c2a2))

    def posterior_mean(self, g: Float[Array, ""], x: Float[Array, " dim"]) -> Float[Array, " dim"]:
        """``eta = E[x1 | x]`` under ``p(x | x1) ∝ exp(g x.x1)``, by :attr:`posterior`.

        ``g`` passes an ``optimization_barrier``: where it is a compile-time constant (``g = 0`` at
        ``tau = 0`` in a step loop that XLA unrolls), XLA would otherwise fold every reduction
        over the then-constant ``tanh(g x)`` at compile time (measured 33 s per reduction at
        ``d = 1e6`` x 32 particles)."""
        return self.posterior(self.dim, self.theta, self.h, jax.lax.optimization_barrier(g), x)

    def denoise(self, interpolant, tau, tau_c, x):
        """``eta = E[x1 | I_tau = x]`` by the selected posterior; score by Tweedie."""
        eta = self.posterior_mean(self.observation_field(interpolant, tau, tau_c), x)
        return eta, interpolant.score_from_denoiser(tau, tau_c, x, eta)

    # -- exact samples and references -----------------------------------------------------------
    def sample(self, key: PRNGKeyArray, num: int) -> Float[Array, "num dim"]:
        """Exact: draw ``S`` from its law, then a uniformly random configuration with that ``S``."""
        k, prob = magnetization_law(self.dim, float(self.theta), float(self.h))
        key_s, key_perm = jax.random.split(key)
        index = jax.random.choice(key_s, len(k), (num,), p=jnp.asarray(prob))
        n_plus = index  # k = 2 n_plus - d
        perms = jax.vmap(lambda kk: jax.random.permutation(kk, self.dim))(jax.random.split(key_perm, num))
        return jnp.where(perms < n_plus[:, None], 1.0, -1.0)

    def reference(self) -> dict[str, float]:
        """Exact finite-``d`` features from the law of ``S``::

        p_ref      = P(S > 0) + P(S = 0) / 2     (ties broken evenly)
        m_abs_ref  = E|S| / d
        spread_ref = 1 - E[S^2] / d^2             (mean_i (x_i - M)^2 = 1 - M^2 for spins)
        spin_error_ref = 0
        """
        k, prob = magnetization_law(self.dim, float(self.theta), float(self.h))
        mag = k / self.dim
        return {
            "p": float(prob[k > 0].sum() + 0.5 * prob[k == 0].sum()),
            "m_abs": float((np.abs(mag) * prob).sum()),
            "spread": float(1.0 - (mag**2 * prob).sum()),
            "spin_error": 0.0,
        }

    def spread_limit(self) -> Float[Array, ""]:
        """``d -> infinity`` limit of the spread reference: ``1 - m^2``, ``m = tanh(theta m)``.

        The finite-``d`` reference differs by ``O(1/d)`` (``E[M^2] = m^2 + O(1/d)`` in each mode).
        """
        return 1.0 - self.m**2

    # -- observables (docs/theory.md §6) ---------------------------------------------------------
    def statistics(self, x: Float[Array, " dim"]) -> dict[str, Float[Array, ""]]:
        """``{"magnetization": M, "spread": mean_i (x_i - M)^2, "spin_error": mean_i (|x_i| - 1)^2}``
        for one particle, ``M = mean_i x_i``."""
        mag = jnp.mean(x)
        return {
            "magnetization": mag,
            "spread": jnp.mean((x - mag) ** 2),
            "spin_error": jnp.mean((jnp.abs(x) - 1) ** 2),
        }

    def order_parameter(self, x: Float[Array, " dim"]) -> Float[Array, ""]:
        """``M = mean_i x_i``."""
        return jnp.mean(x)

    def features(self, stats: dict[str, np.ndarray]) -> dict[str, Feature]:
        """``p``: values ``1[M > 0]``, absolute error; ``m_abs``: values ``|M|``, relative error;
        ``spread``: values ``mean_i (x_i - M)^2``, reference ``1 - E[M^2]``, relative error;
        ``spin_error``: values ``mean_i (|x_i| - 1)^2``, reference 0, absolute (it is itself an error)."""
        return cw_features(stats, self.reference())
