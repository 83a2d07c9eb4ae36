"""Reduced Curie–Weiss flow: one 1-D map of the initial noise, driven by a global weight (docs/theory.md §3).

**Structure.** For ``mu(x1) ∝ exp(theta S^2/(2d) + h S/d)`` seen through ``p(x | x1) ∝ exp(g x.x1)``
(``g = beta / (c^2 alpha^2)``) the posterior mean is (Hubbard–Stratonovich)

    eta_i = E_w[tanh(lam + a_i)],   a_i = h/d + g x_i,
    log w(lam) = -d lam^2/(2 theta) + sum_i log 2cosh(lam + a_i),

so the velocity of coordinate ``i`` is one function of ``x_i`` and of the 1-D weight ``w``, and
``w`` sees the coordinates only through their empirical law. Every explicit Runge–Kutta stage keeps
this form: ``x_i(t) = X_t(z_i)``, the same map of the initial noise ``z_i`` for every ``i``, driven by
``w`` (exactly, at any ``d``).

**Reduction.** Write the noise ``z = (u/sqrt(d)) 1 + z_perp``: ``u = sum_i z_i / sqrt(d) ~ N(0, 1)``
exactly, and ``z_perp`` (mean 0, ``|z_perp|^2 = q ~ chi^2_{d-1}``) independent of ``u``. The
reduction keeps ``u`` and ``q`` and replaces the empirical law of the ``z_perp`` coordinates by the
law ``N(0, q/d)`` discretised by a ``K``-node rule ``(xi_k, w_k)`` of ``N(0, 1)`` with
``sum_k w_k xi_k = 0`` and ``sum_k w_k xi_k^2 = 1`` (so the first two empirical moments are
exact): a reduced particle is ``(u, q, x_1..x_K)`` with ``x_k(0) = s (u/sqrt(d) + sqrt(q/d) xi_k)``
(``s = c alpha(tau(0))``), and ``sum_i f(x_i)`` becomes ``d sum_k w_k f(x_k)`` in ``log w``.
Statistics: ``M = sum_k w_k x_k``, spread ``sum_k w_k (x_k - M)^2``, spin error
``sum_k w_k (|x_k| - 1)^2`` (the keys of :meth:`CurieWeiss.statistics`).

**Error order** (derived for this project; measured in ``tests/test_cw_reduction.py`` and
``benchmarks/cw_reduction_scaling.py``). The neglected part of ``sum_i F(z_i)`` for a smooth ``F``
is ``sum_{n >= 3} a_n sum_i He_n(z_perp_i)`` (``n = 0, 1, 2`` are kept), ``O(sqrt(d))``, with
``He_n`` the Hermite polynomials:

- *Speciation* (``g x_i ~ d^{-1/2}``, where the mode is chosen): only the part of ``log w`` odd in
  ``lam`` moves the odds of the two saddles ``±lam*``; since ``h`` enters as ``h/d`` the saddles
  are symmetric up to ``O(1/d)``, and the odd part of ``log cosh(lam + y)`` is odd in ``y``:
  ``2 tanh(lam*) g sum_i x_i`` (kept: it is ``u``) ``+ O(g^3 sum_i He_3(z_i)) = O(d^{-3/2} d^{1/2})``.
  The mode log-odds, hence ``P(M > 0)``, are wrong by ``O(1/d)``, for every ``h``.
- *After the choice* the single saddle solves ``lam = theta mean_i tanh(lam + a_i)``; the CLT
  fluctuation of that mean shifts it by ``O(d^{-1/2})`` with mean zero: per particle, ``x_i(1)``
  and ``M`` differ from the full particle's by ``O(d^{-1/2})``; features (means over particles)
  by ``O(1/d)`` (the first-order shift averages out).
- The rule adds an error independent of ``d``: ``O(1/K)`` for the stratified rule when the last
  map is steep (fine steps), smaller for smooth maps.

So ``P(M > 0)``, ``E|M|`` and the spread are asymptotically exact with ``O(1/d + 1/K)`` bias; the
within-mode fluctuation of ``M`` beyond ``u`` and ``q`` (``O(d^{-1/2})``) is not represented.
The exact finite-``d`` references at any ``d`` (1e9 included): :func:`cw_reference`.

:class:`ReducedCW` is a system for :func:`nsjax.solve`, :func:`nsjax.sample` and
:mod:`nsjax.sweeps` (one compile for many ``d``: ``dim`` may be traced); :class:`QuantileReducedCW`
starts at given normal quantiles of ``u`` (stratified, deterministic).
"""

from __future__ import annotations

import math
from typing import ClassVar, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from scipy.special import gammaln, ndtri

from ._checks import check_dim
from ._types import Array, Float
from .features import Feature
from .systems import AbstractSystem
from .targets.curie_weiss import CurieWeiss, cw_features, magnetization_law
from .targets.cw_posteriors import (
    _clipped_tanh,
    _hermite_rule,
    _log_cosh_near0,
    _mixture_log_rule,
    _tanh_minus_id,
)

__all__ = ["RULES", "ReducedCWState", "ReducedCW", "QuantileReducedCW", "noise_rule", "cw_reference"]

RULES = ("graded", "quantile", "hermite")


def _magnetization_np(theta: float) -> float:
    """The root ``m > 0`` of ``m = tanh(theta m)`` on the host (0 for ``theta <= 1``)."""
    if theta <= 1:
        return 0.0
    m = 1.0
    for _ in range(60):
        m -= (m - math.tanh(theta * m)) / (1 - theta * (1 - math.tanh(theta * m) ** 2))
    return m


# -- the rule for the z_perp coordinates -----------------------------------------------------------
def _strata(edges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Conditional means and masses of ``N(0, 1)`` on the strata ``[Phi^-1(p_j), Phi^-1(p_j+1)]``."""
    z = ndtri(edges)
    pdf = np.where(np.isfinite(z), np.exp(-0.5 * np.where(np.isfinite(z), z, 0.0) ** 2), 0.0)
    pdf /= math.sqrt(2 * math.pi)
    mass = np.diff(edges)
    return (pdf[:-1] - pdf[1:]) / mass, mass


def noise_rule(
    nodes: int, rule: str = "graded", centre: float = 0.021, window: float = 0.01, refine: int = 32
) -> tuple[np.ndarray, np.ndarray]:
    """``(xi_k, w_k)``: a rule of ``N(0, 1)`` with mean 0 and second moment 1 exactly.

    ``"quantile"``: ``nodes`` equal-mass strata, ``xi_k`` their conditional means, ``w_k =
    1/nodes``; integrates a monotone step to ``O(1/nodes)``. ``"graded"``: the same strata, each
    one of mass ``p`` in ``|p - centre| <= window`` or ``|p - (1 - centre)| <= window`` cut into
    ``refine`` (so ``nodes + 2 (refine - 1) ceil(2 window nodes)`` nodes or so): the final map of
    a CW flow is a step at the quantile ``(1 -+ m)/2`` (0.021 at ``theta = 2``), resolved to
    ``1/(refine nodes)`` there. ``"hermite"``: Gauss–Hermite (probabilists'), exact for
    polynomials of degree ``< 2 nodes``. Stratified nodes are scaled by ``(sum_k w_k xi_k^2)^-1/2``
    (a ``1 + O(log(nodes)/nodes^2)`` factor).
    """
    nodes = check_dim("nodes", nodes)
    if rule in ("quantile", "graded"):
        edges = np.arange(nodes + 1) / nodes
        if rule == "graded":
            refine = check_dim("refine", refine)
            fine = []
            for lo, hi in zip(edges[:-1], edges[1:]):
                near = min(abs(0.5 * (lo + hi) - centre), abs(0.5 * (lo + hi) - 1 + centre))
                holds = lo <= centre < hi or lo < 1 - centre <= hi  # the step's own stratum
                fine.append(np.linspace(lo, hi, refine + 1)[:-1] if near <= window or holds else [lo])
            edges = np.concatenate(fine + [[1.0]])
        xi, w = _strata(edges)
        xi = 0.5 * (xi - xi[::-1])  # exactly antisymmetric: mean 0
    elif rule == "hermite":
        xi, w = np.polynomial.hermite_e.hermegauss(nodes)
        w = w / w.sum()
    else:
        raise ValueError(f"rule must be one of {RULES}, got {rule!r}")
    second = float(np.sum(w * xi**2))
    if second > 0:
        xi = xi / math.sqrt(second)
    return xi, w


# -- exact references at any d ----------------------------------------------------------------------
def cw_reference(theta: float, h: float, dim: float, full_max_dim: int = 2_000_000) -> dict[str, float]:
    """Exact finite-``d`` features of the CW target (as :meth:`CurieWeiss.reference`) at any ``d``.

    ``d <= full_max_dim``: from :func:`magnetization_law`. Beyond: the same law restricted to
    ``|k -+ d m| <= 60 sqrt(d chi)`` around its two peaks (``chi = (1 - m^2)/(1 - theta(1 - m^2))``,
    ``theta > 1``): the neglected mass is below ``e^-1000``.
    """
    d = check_dim("dim", dim)
    if d <= full_max_dim:
        k, prob = magnetization_law(d, float(theta), float(h))
    else:
        if not theta > 1:
            raise ValueError(f"theta must be > 1 for dim > {full_max_dim}, got {theta!r}")
        m = _magnetization_np(float(theta))
        chi = (1 - m**2) / (1 - theta * (1 - m**2))
        half = int(60 * math.sqrt(d * chi)) + 2
        n_centre = int(round(d * (1 + m) / 2))
        n_plus = np.concatenate(
            [np.arange(max(n_centre - half, 0), min(n_centre + half, d) + 1)]
            + [np.arange(max(d - n_centre - half, 0), min(d - n_centre + half, d) + 1)]
        )
        n_plus = np.unique(n_plus).astype(np.float64)
        k = 2 * n_plus - d
        log_w = (
            gammaln(d + 1.0) - gammaln(n_plus + 1) - gammaln(d - n_plus + 1)
            + theta * k**2 / (2 * d) + h * k / d
        )
        prob = np.exp(log_w - log_w.max())
        prob /= prob.sum()
    mag = k / d
    return {
        "p": float(prob[k > 0].sum() + 0.5 * prob[k == 0].sum()),
        "m_abs": float((np.abs(mag) * prob).sum()),
        "spread": float(1.0 - (mag**2 * prob).sum()),
        "spin_error": 0.0,
    }


# -- the weighted Hubbard–Stratonovich posterior ---------------------------------------------------
def _log1p_minus_id(x):
    """``log(1 + x) - x`` without cancellation (Taylor for ``|x| < 1/4``)."""
    taylor = x * x * (-1 / 2 + x * (1 / 3 + x * (-1 / 4 + x * (1 / 5 + x * (-1 / 6 + x * (1 / 7 - x / 8))))))
    return jnp.where(jnp.abs(x) < 0.25, taylor, jnp.log1p(x) - x)


def _saddles(theta, w, t, newton_steps: int, start):
    """Maxima ``(mu_+, mu_-)`` of ``log w`` from ``±start`` (safeguarded Newton, as
    :class:`~nsjax.targets.cw_posteriors.Saddle`, with weighted means) and ``F''/d`` there."""

    def curvature(lam):
        T = _clipped_tanh(lam)
        return -1 / theta + jnp.sum(w * (1 - T**2) * (1 - t) * (1 + t) / (1 + T * t) ** 2)

    def saddle(start):
        def step(lam, _):
            T = _clipped_tanh(lam)
            fixed = theta * jnp.sum(w * (T + t) / (1 + T * t))
            curv = curvature(lam)
            newton = lam - (fixed - lam) / theta / jnp.minimum(curv, -1e-12)
            bounded = jnp.where(start > 0, jnp.minimum(newton, fixed), jnp.maximum(newton, fixed))
            return jnp.clip(jnp.where(curv < 0, bounded, fixed), -theta, theta), None

        lam, _ = jax.lax.scan(step, start, None, length=newton_steps)
        return lam, curvature(lam)

    start = jnp.asarray(start, t.dtype)
    plus, minus = saddle(start), saddle(-start)
    return jnp.stack([plus[0], minus[0]]), jnp.stack([plus[1], minus[1]])


def weighted_posterior(
    dim, theta, h, g, x: Float[Array, " n"], w: Float[Array, " n"], nodes: int = 4, newton_steps: int = 4,
    start=None,
) -> Float[Array, " n"]:
    """``eta(x_j) = E_w[tanh(lam + h/d + g x_j)]`` for ``log w(lam) = -d lam^2/(2 theta) + d sum_k w_k
    log 2cosh(lam + h/d + g x_k)`` (``w_k = 0``: a passive point), by
    :class:`~nsjax.targets.cw_posteriors.Saddle`'s two-peak Gauss–Hermite rule of ``nodes`` nodes,
    the maxima found by ``newton_steps`` safeguarded Newton steps from ``±start`` (default
    ``theta``; ``theta m``, the ``g = 0`` maxima, is closer).

    ``log w`` is evaluated relative to each maximum ``mu`` without the ``O(d)`` cancellation:
    with ``v_k = tanh(mu + a_k)``, ``T = tanh(delta)``, ``m_1 = sum_k w_k v_k``::

        log w(mu + delta) - log w(mu) = d [m_1 (T - delta) + delta (m_1 - mu/theta)
            + log cosh(delta) - delta^2/(2 theta) + sum_k w_k (log(1 + T v_k) - T v_k)]

    and the two peaks' offset from ``F_0(lam) = -lam^2/(2 theta) + log cosh(lam)`` (even) and
    ``sum_k w_k log((1 + T_+ t_k)/(1 + T_- t_k))``, ``t_k = tanh(a_k)``: float64 resolves ``log w`` at
    ``d = 1e9``; float32 to about ``1e-7 d`` nats near speciation.
    """
    t = jnp.tanh(h / dim + g * x)
    mu, curv = _saddles(theta, w, t, newton_steps, theta if start is None else start)
    width = 1 / jnp.sqrt(dim * jnp.maximum(jnp.abs(curv), 0.1 / theta))
    z, log_wz = _hermite_rule(nodes, t.dtype)
    delta = width[:, None] * z[None, :]  # (2, nodes)
    T_mu = _clipped_tanh(mu)
    v = (T_mu[:, None] + t) / (1 + T_mu[:, None] * t)  # (2, n) tanh(mu_j + a_k)
    m1 = jnp.sum(w * v, axis=1)
    Td = jnp.tanh(delta)

    def rise(j):
        corr = jnp.sum(w * _log1p_minus_id(Td[j][:, None] * v[j][None, :]), axis=1)
        return dim * (
            m1[j] * _tanh_minus_id(delta[j]) + delta[j] * (m1[j] - mu[j] / theta)
            + _log_cosh_near0(delta[j]) - delta[j] ** 2 / (2 * theta) + corr
        )

    A, B = jnp.abs(mu[0]), jnp.abs(mu[1])
    diff = A - B
    f0 = -diff * (A + B) / (2 * theta) + _log_cosh_near0(diff) + jnp.log1p(jnp.tanh(diff) * jnp.tanh(B))
    offset = dim * (f0 + jnp.sum(w * (jnp.log1p(T_mu[0] * t) - jnp.log1p(T_mu[1] * t))))
    log_w = jnp.stack([offset + rise(0), rise(1)])
    lam = mu[:, None] + delta
    log_rule = _mixture_log_rule(lam, mu, width, jnp.full(2, math.log(0.5), t.dtype), log_wz) + log_w
    W = jax.nn.softmax(log_rule.reshape(-1))
    T_k = _clipped_tanh(lam.reshape(-1))
    return jnp.einsum("k,ki->i", W, (T_k[:, None] + t) / (1 + T_k[:, None] * t))


# -- the system --------------------------------------------------------------------------------------
class ReducedCWState(NamedTuple):
    """One reduced particle: ``u = sum_i z_i/sqrt(d)``, ``q = |z_perp|^2``, node positions ``x``
    (the ``nodes`` rule nodes, then any passive points)."""

    u: Float[Array, ""]
    q: Float[Array, ""]
    x: Float[Array, " n"]


class ReducedCW(AbstractSystem):
    """The reduction of a :class:`CurieWeiss` flow to ``(u, q)`` and ``nodes`` node positions.

    Args:
        target: the CW target (``theta``, ``h``; its ``dim`` unless ``dim`` is given; its
            posterior strategy is not used: the reduced weight has its own rule).
        nodes: ``K >= 1``, nodes of the rule for the ``z_perp`` coordinates.
        dim: optional ``d`` (may be traced) overriding ``target.dim`` (one compile, many ``d``).
        rule: ``"quantile"`` (stratified, default) or ``"hermite"`` (:func:`noise_rule`).
        passive: ``>= 0`` extra points carried with weight 0 (driven by the reduced weight, not
            driving it; :meth:`from_noise` puts a full particle's coordinates there).
        posterior_nodes: Gauss–Hermite nodes per saddle of the weight (``>= 1``).
        newton_steps: Newton steps to each saddle, from ``±theta m`` (``>= 1``).
    """

    target: CurieWeiss
    nodes: int = eqx.field(static=True, default=128)
    dim: Float[Array, ""] | float | None = None
    rule: str = eqx.field(static=True, default="graded")
    passive: int = eqx.field(static=True, default=0)
    posterior_nodes: int = eqx.field(static=True, default=4)
    newton_steps: int = eqx.field(static=True, default=6)
    state_type: ClassVar[type] = ReducedCWState

    def __check_init__(self):
        if not isinstance(self.target, CurieWeiss):
            raise TypeError(f"target must be a CurieWeiss, got {type(self.target).__name__}")
        for name, low in (("nodes", 1), ("passive", 0), ("posterior_nodes", 1), ("newton_steps", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
        if self.rule not in RULES:
            raise ValueError(f"rule must be one of {RULES}, got {self.rule!r}")
        if self.dim is not None and not isinstance(self.dim, jax.core.Tracer):
            if eqx.is_array(self.dim) and np.ndim(self.dim) != 0:
                raise ValueError(f"dim must be a scalar >= 1, got shape {np.shape(self.dim)}")
            if not float(self.dim) >= 1:
                raise ValueError(f"dim must be >= 1, got {self.dim!r}")

    @property
    def dimension(self):
        """``d``: ``dim`` when given, else ``target.dim``."""
        return self.target.dim if self.dim is None else self.dim

    def rule_points(self) -> tuple[np.ndarray, np.ndarray]:
        """The rule ``(xi_k, w_k)`` (:func:`noise_rule`; ``"graded"`` refines around the quantile
        ``(1 - m)/2`` of this ``theta``, 0.021 when ``theta`` is traced)."""
        theta = self.target.theta
        centre = 0.021
        if not isinstance(theta, jax.core.Tracer):
            centre = (1 - _magnetization_np(float(theta))) / 2
        return noise_rule(self.nodes, self.rule, centre=max(centre, 1e-3))

    @property
    def size(self) -> int:
        """Rule points per particle (``nodes`` for ``"quantile"``/``"hermite"``, more for ``"graded"``)."""
        return len(self.rule_points()[0])

    def _rule(self, dtype):
        xi, w = self.rule_points()
        pad = np.zeros(self.passive)
        return jnp.asarray(xi, dtype), jnp.asarray(np.concatenate([w, pad]), dtype)

    def start(self, u, q, scale, dtype, passive=None) -> ReducedCWState:
        """``x_k(0) = scale (u/sqrt(d) + sqrt(q/d) xi_k)``, then ``passive`` (default ``scale u/sqrt(d)``)."""
        xi = jnp.asarray(self.rule_points()[0], dtype)
        d = jnp.asarray(self.dimension, dtype)
        x = scale * (u / jnp.sqrt(d) + jnp.sqrt(q / d) * xi)
        if self.passive:
            extra = passive if passive is not None else jnp.full(self.passive, scale * u / jnp.sqrt(d), dtype)
            x = jnp.concatenate([x, jnp.asarray(extra, dtype)])
        return ReducedCWState(u, q, x)

    def init(self, key, scale, dtype):
        key_u, key_q = jax.random.split(key)
        u = jax.random.normal(key_u, (), dtype)
        dof = jnp.asarray(self.dimension, dtype) - 1
        gamma = jax.random.gamma(key_q, jnp.maximum(dof, 1) / 2, (), dtype)
        q = jnp.where(dof > 0, 2 * gamma, 0.0)
        return self.start(u, q, scale, dtype)

    def from_noise(self, z: Float[Array, " dim"], scale) -> ReducedCWState:
        """The reduced particle of the full noise ``z`` (``x(0) = scale z``), with ``z``'s own
        coordinates as the passive points (needs ``passive = len(z)``; for oracle tests)."""
        z = jnp.asarray(z)
        if self.passive != z.shape[-1]:
            raise ValueError(f"passive must equal len(z) = {z.shape[-1]}, got {self.passive}")
        d = z.shape[-1]
        u = jnp.sum(z) / math.sqrt(d)
        q = jnp.sum((z - jnp.mean(z)) ** 2)
        return self.start(u, q, jnp.asarray(scale, z.dtype), z.dtype, passive=scale * z)

    def eta(self, interpolant, tau, tau_c, x):
        """Posterior mean at every node and passive point (:func:`weighted_posterior`)."""
        _, w = self._rule(x.dtype)
        g = self.target.observation_field(interpolant, tau, tau_c)
        theta = self.target.theta
        start = theta if isinstance(theta, jax.core.Tracer) else theta * _magnetization_np(float(theta))
        return weighted_posterior(
            self.dimension, theta, self.target.h, g, x, w, nodes=self.posterior_nodes,
            newton_steps=self.newton_steps, start=start,
        )

    def velocity(self, interpolant, tau, tau_c, state):
        eta = self.eta(interpolant, tau, tau_c, state.x)
        score = interpolant.score_from_denoiser(tau, tau_c, state.x, eta)
        dx = interpolant.velocity(tau, tau_c, state.x, eta, score)
        return ReducedCWState(jnp.zeros_like(state.u), jnp.zeros_like(state.q), dx)

    def denoise(self, interpolant, tau, tau_c, state):
        return ReducedCWState(state.u, state.q, self.eta(interpolant, tau, tau_c, state.x))

    def statistics(self, state):
        """Same keys as :meth:`CurieWeiss.statistics`, as rule averages over the nodes."""
        _, w = self.rule_points()
        w = jnp.asarray(w, state.x.dtype)
        x = state.x[..., : len(w)]
        mag = jnp.sum(w * x, axis=-1)
        return {
            "magnetization": mag,
            "spread": jnp.sum(w * (x - mag[..., None]) ** 2, axis=-1),
            "spin_error": jnp.sum(w * (jnp.abs(x) - 1) ** 2, axis=-1),
        }

    def summary(self, state, num_coords):
        out = {"overlap": self.statistics(state)["magnetization"]}
        if num_coords:
            out["coords"] = state.x[..., :num_coords]
        return out

    def bytes_per_particle(self, itemsize, stages):
        n = self.size + self.passive
        return itemsize * (n * (stages + 4 + 2 * self.posterior_nodes) + 8)

    def reference(self) -> dict[str, float]:
        """:func:`cw_reference` at this system's (concrete) ``d``."""
        return cw_reference(float(self.target.theta), float(self.target.h), float(self.dimension))

    def features(self, stats: dict[str, np.ndarray]) -> dict[str, Feature]:
        """:meth:`CurieWeiss.features` with :func:`cw_reference` (any ``d``): for :func:`nsjax.estimate`."""
        return cw_features(stats, self.reference())


class QuantileReducedCW(ReducedCW):
    """:class:`ReducedCW` started at a given ``u`` (``init(z, scale)``: ``u = z``, a float, e.g.
    :func:`nsjax.sweeps.normal_quantiles`) and ``q`` at its mean ``d - 1``: stratified particles."""

    def init(self, key, scale, dtype):
        u = jnp.asarray(key, dtype)
        q = jnp.maximum(jnp.asarray(self.dimension, dtype) - 1, 0.0) + 0 * u
        return self.start(u, q, scale, dtype)
