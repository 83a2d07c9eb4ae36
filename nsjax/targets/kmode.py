"""K-mode Gaussian mixture ``mu = sum_k w_k N(m_k, s2_k I_d)`` (docs/theory.md §2 generalised,
derived for this project).

Convention: ``m_k = A_k e_k`` with ``A_k = a_k sqrt(d)`` (``|m_k|^2 = a_k^2 d``, as
``|r|^2 = d`` for the two-mode mixture) and unit directions ``e_k``. Each mode then separates
from the others on its own scale: the mode posterior's exponents ``beta A_k e_k.x / D_k`` and
``beta^2 A_k^2 / D_k`` become order one at ``beta ~ c / (a_k sqrt(d))``, and
``(d/2) log(D_k / D_l)`` at ``beta ~ c / sqrt(d |s2_k - s2_l|)``: unequal ``a_k`` and ``s2_k``
give several speciation scales ``kappa_k / sqrt(d)``. The directions are pairwise orthogonal or
opposite (``e_k.e_l in {0, -1}``): modes lie on orthogonal *axes*, at most two per axis, on
opposite sides (``K = 2`` with ``e_1 = -e_0`` and equal variances and amplitudes is the
:class:`~nsjax.targets.GaussianMixture`). New targets need only this pattern: one module
implementing :class:`~nsjax.targets.base.AbstractTarget`, registered in ``nsjax.targets``.
"""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from scipy.integrate import quad_vec
from scipy.special import ndtr

from .._checks import check_dim
from .._types import Array, Float, PRNGKeyArray
from ..features import Feature
from ..interpolants import AbstractInterpolant
from .base import AbstractTarget

__all__ = ["KModeMixture"]

GRAM_TOL = 1e-5
"""Tolerance on ``e_k.e_l in {0, -1}`` and ``|e_k| = 1`` when validating ``directions``."""


def _float_array(name: str, allowed: str):
    """A converter to a float array that names ``name`` when ``value`` is no array of numbers."""

    def convert(value):
        if isinstance(value, (str, bytes)) or value is None:
            raise TypeError(f"{name} must be an array of shape (K,) with entries in {allowed}, got {value!r}")
        try:
            value = jnp.asarray(value)
        except (TypeError, ValueError):
            raise TypeError(
                f"{name} must be an array of shape (K,) with entries in {allowed}, got {value!r}"
            ) from None
        if not (jnp.issubdtype(value.dtype, jnp.number) or value.dtype == bool):
            raise TypeError(f"{name} must be an array of shape (K,) with entries in {allowed}, got {value!r}")
        return value if jnp.issubdtype(value.dtype, jnp.inexact) else value.astype(float)

    return convert


def _concrete(value) -> np.ndarray | None:
    """``value`` as a float64 numpy array, or ``None`` when it is traced."""
    if isinstance(value, jax.core.Tracer):
        return None
    return np.asarray(value, dtype=np.float64)


class KModeMixture(AbstractTarget):
    """``mu = sum_k w_k N(A_k e_k, s2_k I_d)``, ``A_k = a_k sqrt(d)``.

    The high-level features are the mode weights ``p0 .. p{K-1}`` (nearest-mode assignment), the
    low-level ones the per-mode variances ``sigma2_0 .. sigma2_{K-1}`` (see :meth:`features`).

    Args:
        dim: ``d >= 1`` (``d >= K`` with the default directions).
        weights: ``w_k`` of shape ``(K,)``, ``K >= 1``, each ``> 0``, summing to 1.
        variances: ``s2_k > 0``, shape ``(K,)``.
        amplitudes: ``a_k > 0``, shape ``(K,)``; ``|m_k| = a_k sqrt(d)``.
        directions: optional ``e_k`` as rows of shape ``(K, d)``: unit vectors, pairwise
            orthogonal or opposite (``e_k.e_l in {0, -1}``, tolerance :data:`GRAM_TOL`).
            ``None``: ``e_k`` is ``1 / sqrt(b)`` on the ``k``-th block of ``b = d // K``
            coordinates (the last ``d - K b`` coordinates belong to no mode), never materialised.
    """

    dim: int = eqx.field(static=True)
    weights: Float[Array, " K"] = eqx.field(
        converter=_float_array("weights", "(0, 1] summing to 1"), default=(0.5, 0.3, 0.2)
    )
    variances: Float[Array, " K"] = eqx.field(
        converter=_float_array("variances", "(0, inf)"), default=(0.25, 0.5, 1.0)
    )
    amplitudes: Float[Array, " K"] = eqx.field(
        converter=_float_array("amplitudes", "(0, inf)"), default=(1.0, 1.0, 1.0)
    )
    directions: Float[Array, "K dim"] | None = None

    def __check_init__(self):
        check_dim("dim", self.dim)
        if jnp.ndim(self.weights) != 1 or jnp.shape(self.weights)[0] < 1:
            raise ValueError(f"weights must have shape (K,) with K >= 1, got shape {jnp.shape(self.weights)}")
        K = self.num_modes
        for name in ("variances", "amplitudes"):
            if jnp.shape(getattr(self, name)) != (K,):
                raise ValueError(
                    f"{name} must have shape (K,) = ({K},) like weights, got {jnp.shape(getattr(self, name))}"
                )
        w = _concrete(self.weights)
        if w is not None and not (np.all(np.isfinite(w)) and np.all(w > 0) and abs(w.sum() - 1) <= 1e-6):
            raise ValueError(f"weights must lie in (0, 1] and sum to 1 (within 1e-6), got {w.tolist()}")
        for name in ("variances", "amplitudes"):
            v = _concrete(getattr(self, name))
            if v is not None and not (np.all(np.isfinite(v)) and np.all(v > 0)):
                raise ValueError(f"{name} must lie in (0, inf), got {v.tolist()}")
        if self.directions is None:
            if self.dim < K:
                raise ValueError(f"dim must be >= K = {K} with the default block directions, got {self.dim}")
            return
        if jnp.shape(self.directions) != (K, self.dim):
            raise ValueError(
                f"directions must have shape (K, dim) = ({K}, {self.dim}), got {jnp.shape(self.directions)}"
            )
        E = _concrete(self.directions)
        if E is not None:
            gram = E @ E.T
            off = gram - np.diag(np.diag(gram))
            unit = np.all(np.abs(np.diag(gram) - 1) <= GRAM_TOL)
            allowed = np.all(np.minimum(np.abs(off), np.abs(off + 1)) <= GRAM_TOL)
            if not (np.all(np.isfinite(E)) and unit and allowed):
                raise ValueError(
                    "directions must have unit rows, pairwise orthogonal or opposite (e_k.e_l in "
                    f"{{0, -1}} within {GRAM_TOL}); got the Gram matrix {np.round(gram, 6).tolist()}"
                )

    # -- geometry -----------------------------------------------------------------------------
    @property
    def num_modes(self) -> int:
        """``K``."""
        return jnp.shape(self.weights)[0]

    @property
    def norms(self) -> Float[Array, " K"]:
        """``A_k = |m_k| = a_k sqrt(d)``."""
        return self.amplitudes * math.sqrt(self.dim)

    def project(self, x: Float[Array, " dim"]) -> Float[Array, " K"]:
        """``u_k = e_k . x``."""
        if self.directions is None:
            K, b = self.num_modes, self.dim // self.num_modes
            return jnp.sum(x[: K * b].reshape(K, b), axis=1) / math.sqrt(b)
        return self.directions @ x

    def combine(self, c: Float[Array, " K"]) -> Float[Array, " dim"]:
        """``sum_k c_k e_k``."""
        if self.directions is None:
            K, b = self.num_modes, self.dim // self.num_modes
            blocks = jnp.broadcast_to((c / math.sqrt(b))[:, None], (K, b)).reshape(-1)
            return jnp.concatenate([blocks, jnp.zeros((self.dim - K * b,), blocks.dtype)])
        return c @ self.directions

    def means(self) -> Float[Array, "K dim"]:
        """The means ``m_k`` as rows (materialised: for tests and sampling)."""
        return jax.vmap(self.combine)(jnp.diag(self.norms))

    # -- exact posterior ------------------------------------------------------------------------
    def variance(self, interpolant: AbstractInterpolant, tau, tau_c) -> Float[Array, " K"]:
        """``D_k(tau) = c^2 alpha^2 + s2_k beta^2``: mode ``k``'s variance in ``rho_tau``."""
        alpha, beta = interpolant.alpha(tau, tau_c), interpolant.beta(tau, tau_c)
        return interpolant.noise_scale**2 * alpha**2 + self.variances * beta**2

    def mode_logits(self, interpolant: AbstractInterpolant, tau, tau_c, x) -> Float[Array, " K"]:
        """``log P(mode k | I_tau = x)`` up to a constant in ``k``::

            l_k = log w_k - (d/2) log(D_k / D_0) + |x|^2 (D_k - D_0) / (2 D_k D_0)
                  + beta A_k u_k / D_k - beta^2 A_k^2 / (2 D_k)

        (``log w_k + log N(x; beta m_k, D_k I)`` less the ``k``-independent
        ``-(d/2) log(2 pi D_0) - |x|^2 / (2 D_0)``, so that equal variances cancel exactly;
        ``D_k - D_0 = (s2_k - s2_0) beta^2``).
        """
        beta = interpolant.beta(tau, tau_c)
        D = self.variance(interpolant, tau, tau_c)
        D0 = D[0]
        delta = (self.variances - self.variances[0]) * beta**2
        A = self.norms
        return (
            jnp.log(self.weights)
            - 0.5 * self.dim * jnp.log1p(delta / D0)
            + jnp.sum(x * x) * delta / (2 * D * D0)
            + beta * A * self.project(x) / D
            - beta**2 * A**2 / (2 * D)
        )

    def denoise(self, interpolant, tau, tau_c, x):
        """Exact posterior mean and score, with ``pi = softmax(l)`` (:meth:`mode_logits`)::

            eta   = sum_k pi_k [(s2_k beta / D_k) x + (c^2 alpha^2 / D_k) m_k]
            score = sum_k pi_k (beta m_k - x) / D_k

        Both finite at ``tau = 1`` (``D_k = s2_k``).
        """
        alpha, beta = interpolant.alpha(tau, tau_c), interpolant.beta(tau, tau_c)
        c2a2 = interpolant.noise_scale**2 * alpha**2
        D = c2a2 + self.variances * beta**2
        pi = jax.nn.softmax(self.mode_logits(interpolant, tau, tau_c, x))
        A = self.norms
        eta = jnp.sum(pi * self.variances * beta / D) * x + self.combine(pi * c2a2 * A / D)
        score = -jnp.sum(pi / D) * x + self.combine(beta * pi * A / D)
        return eta, score

    def log_density(self, interpolant: AbstractInterpolant, tau, tau_c, x) -> Float[Array, ""]:
        """``log rho_tau(x)``, ``rho_tau = sum_k w_k N(beta m_k, D_k I)`` (direct, the test oracle)."""
        beta = interpolant.beta(tau, tau_c)
        D = self.variance(interpolant, tau, tau_c)
        sq = jnp.sum((x[None, :] - beta * self.means()) ** 2, axis=1)
        log_k = jnp.log(self.weights) - 0.5 * self.dim * jnp.log(2 * jnp.pi * D) - sq / (2 * D)
        return jax.nn.logsumexp(log_k)

    # -- exact samples and references -----------------------------------------------------------
    def sample(self, key: PRNGKeyArray, num: int) -> Float[Array, "num dim"]:
        """``x1 = m_k + sqrt(s2_k) z`` with ``P(k) = w_k``."""
        key_mode, key_noise = jax.random.split(key)
        k = jax.random.categorical(key_mode, jnp.log(self.weights), shape=(num,))
        noise = jax.random.normal(key_noise, (num, self.dim), self.variances.dtype)
        return self.means()[k] + jnp.sqrt(self.variances)[k][:, None] * noise

    def _axes(self) -> tuple[np.ndarray, np.ndarray, int]:
        """``(axis of each mode, signed position c_k = ±A_k on it, number of axes)`` (host)."""
        K = self.num_modes
        A = np.asarray(self.amplitudes, dtype=np.float64) * math.sqrt(self.dim)
        if self.directions is None:
            gram = np.eye(K)
        else:
            E = np.asarray(self.directions, np.float64)
            gram = E @ E.T
        axis, sign, count = np.zeros(K, int), np.ones(K), 0
        for k in range(K):
            partner = [l for l in range(k) if gram[k, l] < -0.5]
            if partner:
                axis[k], sign[k] = axis[partner[0]], -sign[partner[0]]
            else:
                axis[k], count = count, count + 1
        return axis, sign * A, count

    def reference(self) -> dict[str, float]:
        """Exact finite-``d`` features by 1-d quadrature (derived for this project).

        ``k* = argmax_k S_k``, ``S_k = m_k.x - |m_k|^2 / 2`` (the nearest mean). On the axes
        ``f_b`` the modes sit at ``c_k f_b`` (``c_k = ±A_k``). Under mode ``j`` the axis coordinates
        ``v_b = f_b.x`` are independent ``N(c_j [b = b_j], s2_j)`` and ``|x_perp|^2 ~ s2_j chi^2_{d - B}``
        (``B`` axes). Given the own-axis coordinate ``v`` of mode ``k`` (``t = c_k v - c_k^2 / 2``),
        the other axes must keep every score below ``t``: ``v_b`` in the interval
        ``I_b(t) = (max_{c_l < 0} t/c_l + c_l/2, min_{c_l > 0} t/c_l + c_l/2)``, and an opposite
        partner ``l`` on the own axis needs ``v`` beyond ``(c_k + c_l) / 2``. So::

            P_j(k* = k) = int dN(v) prod_b G_b(t),   G_b = P(v_b in I_b(t))
            E_j[|x - m_k|^2 ; k* = k] = s2_j (d - B) P_j(k* = k)
                + int dN(v) [(v - c_k)^2 prod_b G_b + sum_b M_b prod_{b' != b} G_b']

        with ``M_b = E[v_b^2 ; v_b in I_b]`` in closed form
        (``E[v^2 ; v < mu + s z] = (mu^2 + s^2) Phi(z) - s (2 mu + s z) phi(z)``); the ``v``-integral
        is adaptive quadrature (``scipy.integrate.quad_vec``, relative tolerance 1e-12). Then::

            p_k      = sum_j w_j P_j(k* = k)
            sigma2_k = sum_j w_j E_j[|x - m_k|^2 ; k* = k] / (d p_k)

        ``sigma2_k`` is the variance of the particles assigned to mode ``k`` (a conditional mean;
        ``-> s2_k`` as ``d -> inf``); ``p_k -> w_k``.
        """
        K, d = self.num_modes, self.dim
        w = np.asarray(self.weights, np.float64)
        s2 = np.asarray(self.variances, np.float64)
        axis, c, B = self._axes()
        on_axis = [np.flatnonzero(axis == b) for b in range(B)]
        p, dev = np.zeros(K), np.zeros(K)
        for j in range(K):
            s = math.sqrt(s2[j])
            mu = np.zeros(B)
            mu[axis[j]] = c[j]
            for k in range(K):
                a = axis[k]
                others = [b for b in range(B) if b != a]
                lo, hi = -np.inf, np.inf
                for l in on_axis[a]:
                    if l != k:
                        mid = (c[k] + c[l]) / 2
                        lo, hi = (mid, hi) if c[k] > 0 else (lo, mid)

                def integrand(z, j=j, k=k, a=a, others=others, s=s, mu=mu):
                    v = mu[a] + s * z
                    t = c[k] * v - c[k] ** 2 / 2
                    G, M2 = np.ones(len(others)), np.zeros(len(others))
                    for i, b in enumerate(others):
                        pos = [t / c[l] + c[l] / 2 for l in on_axis[b] if c[l] > 0]
                        neg = [t / c[l] + c[l] / 2 for l in on_axis[b] if c[l] < 0]
                        upper, lower = min(pos, default=np.inf), max(neg, default=-np.inf)
                        if upper <= lower:
                            G[i], M2[i] = 0.0, 0.0
                            continue
                        zu, zl = (upper - mu[b]) / s, (lower - mu[b]) / s
                        G[i] = ndtr(zu) - ndtr(zl)
                        M2[i] = _second_moment_below(mu[b], s, zu) - _second_moment_below(mu[b], s, zl)
                    prod = np.prod(G)
                    rest = sum(M2[i] * np.prod(np.delete(G, i)) for i in range(len(others)))
                    weight = math.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)
                    return weight * np.array([prod, (v - c[k]) ** 2 * prod + rest])

                z_lo = max((lo - mu[a]) / s, -40.0)
                z_hi = min((hi - mu[a]) / s, 40.0)
                if z_hi <= z_lo:
                    continue
                (P, E), _ = quad_vec(integrand, z_lo, z_hi, epsabs=0.0, epsrel=1e-12, limit=2000)
                p[k] += w[j] * P
                dev[k] += w[j] * (E + s2[j] * (d - B) * P)
        out = {f"p{k}": float(p[k]) for k in range(K)}
        out.update({f"sigma2_{k}": float(dev[k] / (d * p[k])) for k in range(K)})
        return out

    # -- observables ----------------------------------------------------------------------------
    def statistics(self, x: Float[Array, " dim"]) -> dict[str, Float[Array, ""]]:
        """``{"mode": k*, "sq_dev": |x - m_{k*}|^2 / d}`` for one particle, ``k* = argmax_k
        (m_k.x - |m_k|^2 / 2)`` the nearest mean (``mode`` is NaN when ``x`` is not finite)."""
        A = self.norms
        k = jnp.argmax(A * self.project(x) - A**2 / 2)
        nearest = self.combine(jnp.where(jnp.arange(self.num_modes) == k, A, 0.0))
        sq_dev = jnp.sum((x - nearest) ** 2) / self.dim
        return {"mode": jnp.where(jnp.isfinite(sq_dev), k.astype(sq_dev.dtype), jnp.nan), "sq_dev": sq_dev}

    def order_parameter(self, x: Float[Array, " dim"]) -> Float[Array, " K"]:
        """The ``K`` overlaps ``m_k.x / |m_k|^2``."""
        return self.project(x) / self.norms

    def features(self, stats: dict[str, np.ndarray]) -> dict[str, Feature]:
        """``p{k}``: values ``1[k* = k]``, absolute error; ``sigma2_{k}``: values ``sq_dev`` of the
        particles with ``k* = k`` (a conditional mean), relative error."""
        ref = self.reference()
        mode, sq_dev = np.asarray(stats["mode"]), np.asarray(stats["sq_dev"])
        out = {f"p{k}": Feature(mode == k, ref[f"p{k}"], relative=False) for k in range(self.num_modes)}
        for k in range(self.num_modes):
            out[f"sigma2_{k}"] = Feature(sq_dev[mode == k], ref[f"sigma2_{k}"], relative=True)
        return out


def _second_moment_below(mu: float, s: float, z: float) -> float:
    """``E[v^2 ; v < mu + s z]`` for ``v ~ N(mu, s^2)`` (0 at ``z = -inf``, ``mu^2 + s^2`` at ``+inf``)."""
    if not math.isfinite(z):
        return (mu * mu + s * s) if z > 0 else 0.0
    phi = math.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)
    return (mu * mu + s * s) * float(ndtr(z)) - s * (2 * mu + s * z) * phi
