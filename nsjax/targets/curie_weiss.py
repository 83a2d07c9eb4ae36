"""Curie–Weiss spins ``mu(x1) ∝ exp(theta S^2 / (2d) + h S / d)`` on ``{-1, +1}^d`` (MATH.md §3)."""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from scipy.special import gammaln

from .._checks import check_dim, check_positive, check_range
from .._types import Array, Float, PRNGKeyArray
from ..interpolants import AbstractInterpolant
from .base import AbstractTarget

__all__ = ["CurieWeiss", "magnetization", "magnetization_law"]

POSTERIORS = ("exact", "two-saddle")


def magnetization(theta: Float[Array, ""] | float, iterations: int = 60) -> Float[Array, ""]:
    """The positive root ``m`` of ``m = tanh(theta m)`` (0 for ``theta <= 1``); Newton from 1."""
    theta = jnp.asarray(theta, dtype=float)

    def newton(m, _):
        f = m - jnp.tanh(theta * m)
        df = 1 - theta * (1 - jnp.tanh(theta * m) ** 2)
        return jnp.where(jnp.abs(df) > 0, m - f / df, m), None

    m, _ = jax.lax.scan(newton, jnp.ones_like(theta), None, length=iterations)
    return jnp.where(theta > 1, m, 0.0)


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


def _log_cosh(x):
    ax = jnp.abs(x)
    return ax + jnp.log1p(jnp.exp(-2 * ax)) - math.log(2.0)


def _clipped_tanh(lam):
    """``tanh(lam)`` kept off ``±1`` by one ulp so that ``1 + T t > 0`` when ``|t| = 1``."""
    eps = jnp.finfo(jnp.result_type(lam)).eps
    return jnp.clip(jnp.tanh(lam), -1 + eps, 1 - eps)


class CurieWeiss(AbstractTarget):
    """Curie–Weiss model; the high-level feature is ``P(M > 0)``, the low-level one ``E|M|``.

    Args:
        dim: ``d >= 1``.
        theta: inverse temperature ``> 0`` (two modes for ``theta > 1``; paper: 2).
        h: field, favouring ``M > 0`` for ``h > 0`` (any real).
        posterior: ``"exact"`` (Hubbard–Stratonovich with quadrature) or ``"two-saddle"``
            (the paper's approximation, needs ``theta > 1``).
        nodes: Gauss–Hermite nodes per saddle for the exact posterior (``d > grid_max_dim``).
        newton_steps: safeguarded Newton steps locating each saddle.
        grid_max_dim, grid_nodes: up to this ``d`` the exact posterior uses a dense
            Gauss–Legendre rule of ``grid_nodes`` nodes.
    """

    dim: int = eqx.field(static=True)
    theta: Float[Array, ""] | float = 2.0
    h: Float[Array, ""] | float = 0.0
    posterior: str = eqx.field(static=True, default="exact")
    nodes: int = eqx.field(static=True, default=6)
    newton_steps: int = eqx.field(static=True, default=8)
    grid_max_dim: int = eqx.field(static=True, default=64)
    grid_nodes: int = eqx.field(static=True, default=256)

    def __check_init__(self):
        check_dim("dim", self.dim)
        check_positive("theta", self.theta)
        check_range("h", self.h)
        if self.posterior not in POSTERIORS:
            raise ValueError(f"posterior must be one of {POSTERIORS}, got {self.posterior!r}")
        if self.posterior == "two-saddle":
            check_range("theta (two-saddle posterior)", self.theta, 1.0, None)
        check_dim("nodes", self.nodes)

    @property
    def m(self) -> Float[Array, ""]:
        """Mean-field magnetisation, ``m = tanh(theta m)``."""
        return magnetization(self.theta)

    def observation_field(self, interpolant: AbstractInterpolant, tau, tau_c):
        """``g = beta / (c^2 alpha^2)``: ``p(x | x1) ∝ exp(g x.x1)``; huge but finite at ``alpha = 0``."""
        alpha, beta = interpolant.alpha(tau, tau_c), interpolant.beta(tau, tau_c)
        c2a2 = interpolant.noise_scale**2 * alpha**2
        tiny = jnp.finfo(jnp.result_type(c2a2)).tiny
        return beta / jnp.maximum(c2a2, tiny / jnp.maximum(beta, 1e-30) * 4)

    # -- posterior means ------------------------------------------------------------------------
    def denoise(self, interpolant, tau, tau_c, x):
        """``eta = E[x1 | I_tau = x]`` by the selected posterior; score by Tweedie."""
        g = self.observation_field(interpolant, tau, tau_c)
        if self.posterior == "exact":
            eta = self.posterior_mean_exact(g, x)
        else:
            eta = self.posterior_mean_two_saddle(g, x)
        return eta, interpolant.score_from_denoiser(tau, tau_c, x, eta)

    def posterior_mean_exact(self, g, x):
        """Exact ``eta_i = E_w[tanh(lam + a_i)]``, ``a_i = h/d + g x_i`` (MATH.md §3).

        ``log w(lam) = -d lam^2/(2 theta) + sum_i log 2cosh(lam + a_i)``. With ``t_i = tanh(a_i)``
        and ``T = tanh(lam)``: ``tanh(lam + a_i) = (T + t_i)/(1 + T t_i)`` and
        ``log 2cosh(lam + a_i) = log 2cosh(a_i) + log cosh(lam) + log(1 + T t_i)``, so after one
        ``tanh`` per coordinate every pass is rational except the node weights.

        The ``lam``-integral is a quadrature ``sum_k W_k tanh(lam_k + a_i)``:

        - ``d <= grid_max_dim``: Gauss–Legendre on ``[-theta - 12 sqrt(theta/d), theta + 12 sqrt(theta/d)]``
          (``grid_nodes`` nodes), which holds every maximum since ``|mean tanh| < 1``;
        - larger ``d``: the maxima (width ``~ d^-1/2``) are found by safeguarded Newton from
          ``lam = ±theta``, and Gauss–Hermite nodes of the two-Gaussian mixture ``q`` centred on
          them with their Laplace widths integrate ``w / q`` (exact for Gaussian peaks, no double
          counting when the peaks merge).

        Errors against brute-force enumeration and against the dense rule: ``tests/test_targets.py``.
        """
        t = jnp.tanh(self.h / self.dim + g * x)
        if self.dim <= self.grid_max_dim:
            lam_k, log_rule = self._grid_rule(t.dtype)
        else:
            lam_k, log_rule = self._saddle_rule(t)
        T_k = _clipped_tanh(lam_k)
        log_w = -self.dim * lam_k**2 / (2 * self.theta) + self.dim * _log_cosh(lam_k)
        log_w += jax.vmap(lambda T: jnp.sum(jnp.log1p(T * t)))(T_k)
        weights = jax.nn.softmax(log_rule + log_w)
        return jnp.einsum("k,ki->i", weights, (T_k[:, None] + t) / (1 + T_k[:, None] * t))

    def _grid_rule(self, dtype):
        half = self.theta + 12 * jnp.sqrt(self.theta / self.dim)
        z, wz = np.polynomial.legendre.leggauss(self.grid_nodes)
        return half * jnp.asarray(z, dtype), jnp.asarray(np.log(wz), dtype)

    def _saddle_rule(self, t):
        d, theta = self.dim, self.theta

        def curvature(lam):  # F''(lam) / d
            T = _clipped_tanh(lam)
            return -1 / theta + jnp.mean((1 - T**2) * (1 - t) * (1 + t) / (1 + T * t) ** 2)

        def saddle(start):
            def step(lam, _):
                T = _clipped_tanh(lam)
                fixed = theta * jnp.mean((T + t) / (1 + T * t))  # fixed-point map: a bound
                curv = curvature(lam)
                newton = lam - (fixed - lam) / theta / jnp.minimum(curv, -1e-12)
                # from +theta the iterate decreases to the largest root: never below ``fixed``'s side
                bounded = jnp.where(start > 0, jnp.minimum(newton, fixed), jnp.maximum(newton, fixed))
                # every critical point solves lam = theta mean tanh(...), inside (-theta, theta)
                return jnp.clip(jnp.where(curv < 0, bounded, fixed), -theta, theta), None

            lam, _ = jax.lax.scan(step, start, None, length=self.newton_steps)
            width = 1 / jnp.sqrt(d * jnp.maximum(jnp.abs(curvature(lam)), 0.1 / theta))
            return lam, width

        lam_plus, s_plus = saddle(jnp.asarray(theta, dtype=t.dtype))
        lam_minus, s_minus = saddle(-jnp.asarray(theta, dtype=t.dtype))
        z, wz = np.polynomial.hermite_e.hermegauss(self.nodes)
        z = jnp.asarray(z, t.dtype)
        log_wz = jnp.asarray(np.log(wz / math.sqrt(2 * math.pi)), t.dtype)
        centres = jnp.stack([lam_plus, lam_minus])
        widths = jnp.stack([s_plus, s_minus])
        lam_k = (centres[:, None] + widths[:, None] * z[None, :]).reshape(-1)
        log_q = jax.nn.logsumexp(
            math.log(0.5)
            - 0.5 * ((lam_k[:, None] - centres) / widths) ** 2
            - jnp.log(widths * math.sqrt(2 * math.pi)),
            axis=1,
        )
        return lam_k, math.log(0.5) + jnp.tile(log_wz, 2) - log_q

    def posterior_mean_two_saddle(self, g, x):
        """The paper's two-saddle approximation (MATH.md §3), in log space::

            eta_i = [W+ Q+ tanh(theta m + g x_i) + W- Q- tanh(-theta m + g x_i)] / (W+ Q+ + W- Q-)

        ``Q± = prod_i (1 ± m tanh(g x_i))``, ``W± = e^{±hm} / (2 cosh(hm))``, and
        ``tanh(±theta m + g x_i) = (±m + t_i)/(1 ± m t_i)`` since ``tanh(theta m) = m``.
        """
        t = jnp.tanh(g * x)
        m = _clipped_tanh(jnp.arctanh(jnp.minimum(self.m, 1.0)).astype(t.dtype))
        log_plus = self.h * m + jnp.sum(jnp.log1p(m * t))
        log_minus = -self.h * m + jnp.sum(jnp.log1p(-m * t))
        w_plus = jax.nn.sigmoid(log_plus - log_minus)
        return w_plus * (m + t) / (1 + m * t) + (1 - w_plus) * (t - m) / (1 - m * t)

    def posterior_mean_enumerated(self, g, x):
        """Brute-force ``E[x1 | x]`` over all ``2^d`` states (``d <= 16``): the test oracle."""
        if self.dim > 16:
            raise ValueError(f"enumeration needs dim <= 16, got {self.dim}")
        states = jnp.asarray(((np.arange(2**self.dim)[:, None] >> np.arange(self.dim)) & 1) * 2 - 1, x.dtype)
        S = states.sum(axis=1)
        log_w = self.theta * S**2 / (2 * self.dim) + self.h * S / self.dim + g * states @ x
        return jax.nn.softmax(log_w) @ states

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

        p_ref     = P(S > 0) + P(S = 0) / 2     (ties broken evenly)
        m_abs_ref = E|S| / d
        spin_error_ref = 0
        """
        k, prob = magnetization_law(self.dim, float(self.theta), float(self.h))
        return {
            "p": float(prob[k > 0].sum() + 0.5 * prob[k == 0].sum()),
            "m_abs": float((np.abs(k) / self.dim * prob).sum()),
            "spin_error": 0.0,
        }
