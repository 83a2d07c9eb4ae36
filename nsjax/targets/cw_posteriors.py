"""Posterior means of the Curie–Weiss target, one strategy per algorithm (docs/theory.md §3).

The target ``mu(x1) ∝ exp(theta S^2/(2d) + h S/d)`` seen through ``p(x | x1) ∝ exp(g x.x1)`` has,
by the Hubbard–Stratonovich identity, the posterior mean

    eta_i = E_w[tanh(lam + a_i)],   a_i = h/d + g x_i,
    log w(lam) = -d lam^2/(2 theta) + sum_i log 2cosh(lam + a_i).

With ``t_i = tanh(a_i)`` and ``T = tanh(lam)``: ``tanh(lam + a_i) = (T + t_i)/(1 + T t_i)`` and
``log 2cosh(lam + a_i) = log 2cosh(a_i) + log cosh(lam) + log(1 + T t_i)``, so after one ``tanh``
per coordinate every pass over the coordinates is rational except the node weights.

Strategies (each an :class:`AbstractCWPosterior`, called as ``strategy(dim, theta, h, g, x)``):

- :class:`Grid`: dense Gauss–Legendre rule in ``lam`` (small ``d``);
- :class:`Saddle`: Gauss–Hermite nodes around the maxima of ``w``, found by safeguarded Newton;
- :class:`PowerSum`: :class:`Saddle`'s rule with ``log w`` and ``eta`` read off power sums (large ``d``);
- :class:`Exact`: the production dispatcher (Grid, then Saddle, then PowerSum as ``d`` grows);
- :class:`TwoSaddle`: the paper's approximation (``lam = ±theta m`` only);
- :class:`Enumeration`: brute force over the ``2^d`` states (``d <= 16``), the test oracle.
"""

from __future__ import annotations

import abc
import functools
import math
from typing import ClassVar, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._checks import check_positive, check_range
from .._types import Array, Float
from ._sums import blocked, coordinate_sum

__all__ = [
    "POSTERIORS",
    "AbstractCWPosterior",
    "AbstractHubbardStratonovich",
    "Enumeration",
    "Exact",
    "Grid",
    "PowerSum",
    "Saddle",
    "TwoSaddle",
    "as_posterior",
    "magnetization",
]


def magnetization(theta: Float[Array, ""] | float, iterations: int = 60) -> Float[Array, ""]:
    """The positive root ``m`` of ``m = tanh(theta m)`` (0 for ``theta <= 1``); Newton from 1."""
    theta = jnp.asarray(theta, dtype=float)

    def newton(m, _):
        f = m - jnp.tanh(theta * m)
        df = 1 - theta * (1 - jnp.tanh(theta * m) ** 2)
        return jnp.where(jnp.abs(df) > 0, m - f / df, m), None

    m, _ = jax.lax.scan(newton, jnp.ones_like(theta), None, length=iterations)
    return jnp.where(theta > 1, m, 0.0)


# -- numerical helpers ----------------------------------------------------------------------------
def _log_cosh(x):
    ax = jnp.abs(x)
    return ax + jnp.log1p(jnp.exp(-2 * ax)) - math.log(2.0)


def _clipped_tanh(lam):
    """``tanh(lam)`` kept off ``±1`` by one ulp so that ``1 + T t > 0`` when ``|t| = 1``."""
    eps = jnp.finfo(jnp.result_type(lam)).eps
    return jnp.clip(jnp.tanh(lam), -1 + eps, 1 - eps)


def _log_cosh_near0(x):
    """``log cosh x`` without the cancellation of :func:`_log_cosh` near 0 (Taylor for ``|x| < 1/4``)."""
    x2 = x * x
    taylor = x2 * (1 / 2 + x2 * (-1 / 12 + x2 * (1 / 45 + x2 * (-17 / 2520 + x2 * 31 / 14175))))
    return jnp.where(jnp.abs(x) < 0.25, taylor, _log_cosh(x))


def _tanh_minus_id(x):
    """``tanh x - x``, Taylor for ``|x| < 1/4``."""
    x2 = x * x
    taylor = x * x2 * (-1 / 3 + x2 * (2 / 15 + x2 * (-17 / 315 + x2 * 62 / 2835)))
    return jnp.where(jnp.abs(x) < 0.25, taylor, jnp.tanh(x) - x)


BLOCK = 1024
"""Coordinates per block of the power sums: float32 rounding grows like ``BLOCK + d / BLOCK``."""


def _sums(terms, t):
    """``[sum_i f(t_i) for f in terms(t)]``: one variadic reduction, one pass over ``t``."""

    def fn(rows):
        arrays = tuple(terms(rows))
        zeros = tuple(jnp.zeros((), a.dtype) for a in arrays)
        reduced = jax.lax.reduce(arrays, zeros, lambda u, v: tuple(a + b for a, b in zip(u, v)), (1,))
        return [r.sum() for r in reduced]

    return blocked(fn, t, BLOCK)


def _sum_log(numerator, denominator, t, group: int):
    """``sum_i log(numerator(t_i) / denominator(t_i))`` with one ``log`` and one division per
    ``group`` coordinates (log of the ratio of their products: a division per coordinate was a
    third of the exact posterior's time on CPU; the caller picks ``group`` so that neither product
    can leave the float range)."""

    def fn(rows):
        k = group if rows.shape[1] % group == 0 else 1
        num = jnp.prod(numerator(rows).reshape(-1, k), axis=-1)
        den = jnp.prod(denominator(rows).reshape(-1, k), axis=-1)
        return [coordinate_sum(jnp.log(num / den))]

    return blocked(fn, t, BLOCK)[0]


def _log_group(theta) -> int:
    """Factors ``1 + T t`` with ``|t| <= 1`` and ``|T| <= tanh(theta)`` lie in
    ``[2 e^-2theta / (1 + e^-2theta), 2]``, inside ``[e^-(2 theta + 1), e^(2 theta + 1)]``: a product
    of ``group`` of them (and the ratio of two such products) stays inside float32's ``e^±87``."""
    if not isinstance(theta, (int, float)):
        return 1
    fit = 80 / (2 * float(theta) + 1)
    return next(k for k in (8, 4, 2, 1) if k <= fit or k == 1)


def _even_difference(c0, c1, theta):
    """``phi(c0) - phi(c1)``, ``phi(c) = log cosh c - c^2/(2 theta)`` (even), to rounding of the
    result itself: with ``a = |c0|``, ``b = |c1|`` (``a - b`` exact for nearby centres),
    ``log cosh a - log cosh b = (a - b) + log1p(e^-2b expm1(2(b - a)) / (1 + e^-2b))``.
    The direct difference loses ``d eps |phi|`` nats once multiplied by ``d`` (0.04 at d = 1e6 in
    float32), which moves the mode weights by percents."""
    a, b = jnp.abs(c0), jnp.abs(c1)
    e = jnp.exp(-2 * b)
    return (a - b) * (1 - (a + b) / (2 * theta)) + jnp.log1p(e * jnp.expm1(2 * (b - a)) / (1 + e))


def _hermite_rule(nodes: int, dtype):
    """Probabilists' Gauss–Hermite nodes ``z`` and log-weights of ``N(0, 1)`` (they sum to 1)."""
    z, wz = np.polynomial.hermite_e.hermegauss(nodes)
    return jnp.asarray(z, dtype), jnp.asarray(np.log(wz / math.sqrt(2 * math.pi)), dtype)


def _mixture_log_rule(lam, centres, widths, log_pi, log_wz):
    """``log`` of the importance rule ``pi_j W_k / q(lam_jk)`` at ``lam_jk = centres_j + widths_j z_k``,
    ``q = sum_j pi_j N(centres_j, widths_j^2)``: ``sum_jk`` of it times ``f(lam_jk)`` integrates ``f``,
    exactly when ``f / q`` times each Gaussian is a polynomial of degree ``< 2K`` in ``z``."""
    log_q = jax.nn.logsumexp(
        log_pi - 0.5 * ((lam[..., None] - centres) / widths) ** 2 - jnp.log(widths * math.sqrt(2 * math.pi)),
        axis=-1,
    )
    return log_pi[:, None] + log_wz - log_q


def _check_count(name: str, value, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")


# -- strategies -----------------------------------------------------------------------------------
class AbstractCWPosterior(eqx.Module):
    """A posterior-mean algorithm for :class:`~nsjax.targets.CurieWeiss`; its knobs are static fields.

    ``name`` is the string alias (``CurieWeiss(..., posterior=name)``) and a stable label for caches
    and reports.
    """

    name: ClassVar[str]

    @abc.abstractmethod
    def __call__(
        self,
        dim: int,
        theta: Float[Array, ""] | float,
        h: Float[Array, ""] | float,
        g: Float[Array, ""],
        x: Float[Array, " dim"],
    ) -> Float[Array, " dim"]:
        """``eta = E[x1 | x]`` for ``mu(x1) ∝ exp(theta S^2/(2 dim) + h S/dim)`` observed through
        ``p(x | x1) ∝ exp(g x.x1)``."""

    def check(self, dim: int, theta) -> None:
        """Raise ``ValueError`` where this algorithm cannot serve a target ``(dim, theta)``."""


class AbstractHubbardStratonovich(AbstractCWPosterior):
    """A quadrature of the Hubbard–Stratonovich integral: ``h`` and ``g x`` enter only through
    ``t_i = tanh(h/d + g x_i)``."""

    def __call__(self, dim, theta, h, g, x):
        return self.mean_from_tanh(dim, theta, jnp.tanh(h / dim + g * x))

    @abc.abstractmethod
    def mean_from_tanh(
        self, dim: int, theta: Float[Array, ""] | float, t: Float[Array, " dim"]
    ) -> Float[Array, " dim"]:
        """``eta_i = E_w[(T + t_i)/(1 + T t_i)]``, ``T = tanh(lam)``, given ``t_i = tanh(h/d + g x_i)``."""


def _rule_mean(dim, theta, t, lam_k, log_rule):
    """``eta_i = sum_k W_k tanh(lam_k + a_i)``, ``W ∝ exp(log_rule + log w(lam_k))``: one pass over the
    coordinates per node."""
    T_k = _clipped_tanh(lam_k)
    log_w = -dim * lam_k**2 / (2 * theta) + dim * _log_cosh(lam_k)
    log_w += jax.vmap(lambda T: jnp.sum(jnp.log1p(T * t)))(T_k)
    weights = jax.nn.softmax(log_rule + log_w)
    return jnp.einsum("k,ki->i", weights, (T_k[:, None] + t) / (1 + T_k[:, None] * t))


class Grid(AbstractHubbardStratonovich):
    """Dense Gauss–Legendre rule of ``nodes`` nodes on ``|lam| <= L = theta + 12 sqrt(theta/d)``::

        eta_i = sum_k W_k w(lam_k) tanh(lam_k + a_i) / sum_k W_k w(lam_k)

    Every maximum of ``w`` solves ``lam = theta mean_i tanh(lam + a_i)``, inside ``(-theta, theta)``,
    and ``w`` falls by ``e^-72`` within ``12 sqrt(theta/d)`` beyond. Accuracy: near a maximum ``w`` is
    a Gaussian of width ``sigma = (d kappa)^-1/2 >= sqrt(theta/d)`` (``kappa = -F''/d <= 1/theta``),
    an entire function bounded by ``e^(y^2/(2 sigma^2))`` at height ``y``; the Bernstein-ellipse
    bound for Gauss–Legendre then gives a relative error ``~ exp(-2 (nodes sigma / L)^2)``:
    below ``e^-28`` for ``d <= 12`` at 64 nodes, ``d <= 64`` at 256, ``d <= 10^4`` at 600.
    Cost: ``nodes`` passes over the coordinates.
    """

    nodes: int = eqx.field(static=True, default=256)
    name: ClassVar[str] = "grid"

    def __check_init__(self):
        _check_count("nodes", self.nodes, 1)

    def rule(self, dim: int, theta, dtype) -> tuple[Float[Array, " nodes"], Float[Array, " nodes"]]:
        """Nodes ``lam_k`` and log-weights ``log W_k``."""
        half = theta + 12 * jnp.sqrt(theta / dim)
        z, wz = np.polynomial.legendre.leggauss(self.nodes)
        return half * jnp.asarray(z, dtype), jnp.asarray(np.log(wz), dtype)

    def mean_from_tanh(self, dim, theta, t):
        return _rule_mean(dim, theta, t, *self.rule(dim, theta, t.dtype))


class Saddle(AbstractHubbardStratonovich):
    """Gauss–Hermite nodes around the maxima of ``w``.

    The maxima ``mu_±`` (width ``sigma_± = (d kappa_±)^-1/2``, ``kappa = max(-F''/d, 0.1/theta)``)
    are found by ``newton_steps`` safeguarded Newton steps on ``F'(lam) = 0`` from ``lam = ±theta``
    (each step bounded by the fixed-point map ``lam -> theta mean_i tanh(lam + a_i)``, whose roots
    are the critical points). With ``q = (N(mu_+, sigma_+^2) + N(mu_-, sigma_-^2))/2`` and the
    ``nodes``-point rule ``(z_k, W_k)`` of ``N(0, 1)``::

        lam_jk = mu_j + sigma_j z_k,   eta_i ∝ sum_jk W_k w(lam_jk) tanh(lam_jk + a_i) / (2 q(lam_jk))

    which is exact for Gaussian peaks and does not count a peak twice when the two merge.
    Accuracy: around a maximum, ``log w(mu + sigma z) - log w(mu) = -z^2/2 + sum_{n >= 3} c_n z^n``
    with ``c_n = F^(n)(mu) sigma^n / n! = O(d^(1 - n/2))``. The rule integrates polynomials of
    degree ``< 2 nodes`` in ``z`` exactly; the first term it misses in a peak's mass is
    ``c3^(2 nodes/3) z^(2 nodes) / (2 nodes/3)!`` (missed by ``nodes!``: ``30 c3^4 = O(d^-2)`` at 6
    nodes), and in ``eta``, a ratio, the terms of that order cancel, leaving ``O(d^-3)``
    (against adaptive quadrature at ``theta = 2``, 6 nodes: ``6e-7`` at ``d = 100``, ``3e-10`` at
    ``10^3``, ``2e-13`` at ``10^4``). Doubling ``nodes`` multiplies the error by a further
    ``~ c3^(2 nodes/3) << 1/2``, so ``2 |eta(nodes) - eta(2 nodes)|`` bounds the error of
    ``eta(nodes)``. For ``d <~ 10`` the peaks are not Gaussian and the rule converges slowly in
    ``nodes`` (``2e-2`` at 6 nodes, ``1e-5`` at 96, ``d = 12``): :class:`Grid` serves there.
    Cost: ``2 newton_steps + 2 nodes`` passes over the coordinates.
    """

    nodes: int = eqx.field(static=True, default=6)
    newton_steps: int = eqx.field(static=True, default=8)
    name: ClassVar[str] = "saddle"

    def __check_init__(self):
        _check_count("nodes", self.nodes, 1)
        _check_count("newton_steps", self.newton_steps, 1)

    def saddles(
        self, dim: int, theta, t: Float[Array, " dim"]
    ) -> tuple[Float[Array, "2"], Float[Array, "2"]]:
        """The maxima ``(mu_+, mu_-)`` reached from ``±theta`` and their Laplace widths."""
        d = dim

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
        return jnp.stack([lam_plus, lam_minus]), jnp.stack([s_plus, s_minus])

    def rule(self, dim: int, theta, t) -> tuple[Float[Array, " nodes2"], Float[Array, " nodes2"]]:
        """Nodes ``lam_jk`` and log-weights ``log(W_k / (2 q(lam_jk)))``, flattened."""
        centres, widths = self.saddles(dim, theta, t)
        z, log_wz = _hermite_rule(self.nodes, t.dtype)
        lam = centres[:, None] + widths[:, None] * z[None, :]
        log_rule = _mixture_log_rule(lam, centres, widths, jnp.full(2, math.log(0.5), t.dtype), log_wz)
        return lam.reshape(-1), log_rule.reshape(-1)

    def mean_from_tanh(self, dim, theta, t):
        return _rule_mean(dim, theta, t, *self.rule(dim, theta, t))


class _Expansion(NamedTuple):
    """Two expansion centres, their power sums, and where the expansion puts the maxima."""

    centre: Array  # (2,) lam_j
    sums: Array  # (2, N) p_jn = sum_i tanh(lam_j + a_i)^n
    offset: Array  # (2,) log w(lam_j) - log w(lam_1)
    peak: Array  # (2,) delta_j: the maximum of log w near lam_j is at lam_j + delta_j
    width: Array  # (2,) Laplace width sigma_j
    height: Array  # (2,) log w at the maximum, relative to log w(lam_1)
    error: Array  # (2,) bound on the expansion's error in log w at the nodes
    keep: Array  # (2,) the peak carries weight (not below the other by more than 40 nats)
    done: Array  # () every kept peak is within series_tol


def _series_log_w(dim, theta, centre, sums, delta):
    """``log w(centre + delta) - log w(centre)`` from the truncated series (cancellation-free)."""
    d = dim
    S = jnp.tanh(delta)
    series = 0.0
    for n in range(sums.shape[0], 1, -1):
        series = (series + (-1) ** (n + 1) * sums[n - 1] / n) * S
    return (
        (sums[0] - d * centre / theta + series) * S
        + d * centre / theta * _tanh_minus_id(delta)
        + d * (_log_cosh_near0(delta) - delta**2 / (2 * theta))
    )


class PowerSum(AbstractHubbardStratonovich):
    """:class:`Saddle`'s rule with ``log w`` and ``eta`` read off power sums (large ``d``).

    Around a centre ``lam_j`` with ``u_i = tanh(lam_j + a_i)``, ``S = tanh(delta)`` and
    ``p_n = sum_i u_i^n``, the identity ``log cosh(lam_j + delta + a) = log cosh(lam_j + a)
    + log cosh(delta) + log(1 + u S)`` gives::

        log w(lam_j + delta) - log w(lam_j) = -d (2 lam_j delta + delta^2) / (2 theta)
            + d log cosh(delta) + sum_{n >= 1} (-1)^(n+1) S^n p_n / n

    (``|u| < 1``: truncated after ``series_terms`` terms the error is at most
    ``d |S|^(N+1) / ((N+1)(1 - |S|))``), and
    ``tanh(mu + s + a_i) = v + (1 - v^2) sum_{n >= 0} (-v)^n s'^(n+1)`` with
    ``v = tanh(mu + a_i)``, ``s' = tanh(s)`` turns the posterior mean into a polynomial in
    ``v`` whose coefficients are moments of the quadrature rule. Two centres start at
    ``±theta m``; one pass gives both sets of sums and ``log w(lam_0) - log w(lam_1) =
    ... + sum_i log((1 + T_0 t_i)/(1 + T_1 t_i))``; Newton on the truncated series places
    the maxima, and while an error bound exceeds ``series_tol`` the centres are moved and summed
    again: the first time onto the maxima of the first ``start_sample`` coordinates
    (:class:`Saddle`'s Newton on that sample; far from ``g = 0`` the maxima leave ``±theta m``
    by more than the series reaches), then onto the series' maxima (at most ``max_passes``
    passes; a peak more than 40 nats below the other is dropped). The rule is then :class:`Saddle`'s with ``nodes`` nodes per peak.
    Accuracy: where the passes converge (every kept peak's bound ``<= series_tol``, which needs
    ``d S^(N+1) / ((N+1)(1 - S)) <= series_tol`` at ``S = tanh(z_max sigma)``; ``z_max`` the largest
    node: from ``d ~ 10^4`` at the defaults), ``log w`` is within ``series_tol`` of its value at every
    node, so the weights are within ``expm1(2 series_tol)`` and ``eta`` within
    ``2 expm1(2 series_tol)`` of the same rule evaluated node by node (:class:`Saddle`, whose
    accuracy adds); the ``s'`` series truncated after :meth:`mean_terms` terms adds at most
    ``s^(n_B + 1) / (1 - s)``, ``s = tanh(z_max sigma)``. For ``d <~ 10^3`` both series converge
    slowly (``S ~ 0.5`` at ``d = 100``): :class:`Saddle` serves there, and at ``d <= 12`` the
    expansion is wrong by ``O(1)``.
    Cost: two reductions and one elementwise pass over the coordinates, two more reductions per
    re-centring.
    """

    nodes: int = eqx.field(static=True, default=6)
    series_terms: int = eqx.field(static=True, default=4)
    series_tol: float = eqx.field(static=True, default=1e-3)
    max_passes: int = eqx.field(static=True, default=6)
    start_sample: int = eqx.field(static=True, default=4096)
    name: ClassVar[str] = "power-sum"

    def __check_init__(self):
        _check_count("nodes", self.nodes, 1)
        _check_count("series_terms", self.series_terms, 1)
        _check_count("max_passes", self.max_passes, 1)
        _check_count("start_sample", self.start_sample, 0)
        check_positive("series_tol", self.series_tol)

    @staticmethod
    def mean_terms(dim: int) -> int:
        """Terms ``n_B`` of the ``s'`` series: ``|s'| <~ s = 4 d^-1/2 / 0.3`` (capped at 1/2) and the
        dropped terms ``s^(n_B + 1)`` below ``1e-8``, ``3 <= n_B <= 12``."""
        s = min(4 / math.sqrt(0.1 * dim), 0.5)
        return int(np.clip(math.ceil(math.log(1e-8) / math.log(s)), 3, 12))

    def mean_from_tanh(self, dim, theta, t):
        state = self._analyse(dim, theta, t, self.start(dim, theta, t))

        def refine(state):
            moved = jnp.where(state.done | ~state.keep, 0.0, state.peak)
            return self._analyse(dim, theta, t, jnp.clip(state.centre + moved, -theta, theta))

        def more(carry):
            state, passes = carry
            return ~state.done & (passes < self.max_passes)

        state, _ = jax.lax.while_loop(more, lambda c: (refine(c[0]), c[1] + 1), (state, 1))
        return self._mean(dim, theta, t, state)

    def start(self, dim: int, theta, t: Float[Array, " dim"]) -> Float[Array, "2"]:
        """The first centres: the maxima of ``w`` for the first ``start_sample`` coordinates
        (exchangeable under the noise; :class:`Saddle`'s Newton from ``±theta``, about
        ``start_sample / dim`` of a pass), or ``±theta m`` (the ``g = 0`` maxima) if ``start_sample = 0``.
        A poor start costs passes, never accuracy: the error bound decides."""
        if self.start_sample == 0:
            start = theta * magnetization(theta)
            return jnp.stack([start, -start]).astype(t.dtype)
        n = min(dim, self.start_sample)
        return Saddle(newton_steps=8).saddles(n, theta, t[:n])[0]

    def _analyse(self, dim, theta, t, centre) -> _Expansion:
        d, N = dim, self.series_terms
        T = _clipped_tanh(centre)

        def powers(t):
            # one division for both centres: a division costs several multiplications on CPU,
            # and the pass is bound by them (measured: 3.3 -> 1.5 ns per coordinate)
            inv = 1 / ((1 + T[0] * t) * (1 + T[1] * t))
            out = []
            for u in ((T[0] + t) * (1 + T[1] * t) * inv, (T[1] + t) * (1 + T[0] * t) * inv):
                out.append(u)
                for _ in range(N - 1):
                    out.append(out[-1] * u)
            return out

        sums = jnp.stack(_sums(powers, t)).reshape(2, N)
        log_ratio = _sum_log(lambda t: 1 + T[0] * t, lambda t: 1 + T[1] * t, t, _log_group(theta))
        offset0 = d * _even_difference(centre[0], centre[1], theta) + log_ratio
        offset = jnp.stack([offset0, jnp.zeros_like(offset0)])
        reach = 1.0  # Newton's search radius around each centre; the next pass re-centres there

        def maximise(centre_j, sums_j):
            f = functools.partial(_series_log_w, d, theta, centre_j, sums_j)
            df, d2f = jax.grad(f), jax.grad(jax.grad(f))
            lo = jnp.maximum(-reach, -theta - centre_j)
            hi = jnp.minimum(reach, theta - centre_j)

            def step(delta, _):
                g1, g2 = df(delta), d2f(delta)
                newton = delta - g1 / jnp.minimum(g2, -1e-30)
                uphill = delta + jnp.sign(g1) * reach / 4
                return jnp.clip(jnp.where(g2 < 0, newton, uphill), lo, hi), None

            delta, _ = jax.lax.scan(step, jnp.zeros_like(centre_j), None, length=12)
            curvature = jnp.maximum(-d2f(delta), d * 0.1 / theta)
            return delta, 1 / jnp.sqrt(curvature), f(delta)

        peak, width, rise = jax.vmap(maximise)(centre, sums)
        z_max = jnp.max(_hermite_rule(self.nodes, t.dtype)[0])
        S = jnp.minimum(jnp.tanh(jnp.abs(peak) + z_max * width), 0.999)
        error = d * S ** (N + 1) / ((N + 1) * (1 - S))
        height = offset + rise
        keep = height + error >= jnp.max(height) - 40.0
        done = jnp.all(~keep | (error <= self.series_tol))
        return _Expansion(centre, sums, offset, peak, width, height, error, keep, done)

    def _mean(self, dim, theta, t, s: _Expansion):
        z, log_wz = _hermite_rule(self.nodes, t.dtype)
        mu = s.centre + s.peak  # the maxima
        delta = s.peak[:, None] + s.width[:, None] * z  # (2, K) nodes relative to the centres
        log_w = s.offset[:, None] + jax.vmap(functools.partial(_series_log_w, dim, theta))(
            s.centre, s.sums, delta
        )
        nodes = s.centre[:, None] + delta
        log_pi = jnp.where(s.keep, -jnp.log(jnp.sum(s.keep).astype(t.dtype)), -jnp.inf)
        log_rule = jnp.where(
            s.keep[:, None], _mixture_log_rule(nodes, mu, s.width, log_pi, log_wz) + log_w, -jnp.inf
        )
        W = jax.nn.softmax(log_rule.reshape(-1)).reshape(log_rule.shape)
        # moments M_jn = sum_k W_jk tanh(width_j z_k)^n of each peak, n = 0 .. nB
        nB = self.mean_terms(dim)
        S = jnp.tanh(s.width[:, None] * z)
        moments = jnp.stack([jnp.sum(W * S**n, axis=1) for n in range(nB + 1)], axis=1)
        T = _clipped_tanh(mu)
        inv = 1 / ((1 + T[0] * t) * (1 + T[1] * t))
        eta = 0.0
        for j, v in enumerate(((T[0] + t) * (1 + T[1] * t) * inv, (T[1] + t) * (1 + T[0] * t) * inv)):
            M = moments[j]
            acc = M[nB]
            for n in range(nB - 1, 0, -1):
                acc = M[n] - v * acc
            eta = eta + M[0] * v + (1 - v * v) * acc
        return eta


class Exact(AbstractHubbardStratonovich):
    """The production exact posterior: :class:`Grid` for ``d <= grid_max_dim``, :class:`PowerSum`
    for ``d >= series_min_dim`` (and ``d > grid_max_dim``), :class:`Saddle` in between.

    The branch is chosen from the static ``d``; its accuracy is the chosen strategy's. Errors
    against brute-force enumeration, against each other and against an adaptive quadrature:
    ``tests/test_cw_posteriors.py``.
    """

    grid_max_dim: int = eqx.field(static=True, default=64)
    series_min_dim: int = eqx.field(static=True, default=10_000)
    grid: Grid = eqx.field(default_factory=Grid)
    saddle: Saddle = eqx.field(default_factory=Saddle)
    power_sum: PowerSum = eqx.field(default_factory=PowerSum)
    name: ClassVar[str] = "exact"

    def __check_init__(self):
        _check_count("grid_max_dim", self.grid_max_dim, 0)
        _check_count("series_min_dim", self.series_min_dim, 0)
        for knob, kind in (("grid", Grid), ("saddle", Saddle), ("power_sum", PowerSum)):
            if not isinstance(getattr(self, knob), kind):
                raise ValueError(f"{knob} must be a {kind.__name__}, got {getattr(self, knob)!r}")

    def branch(self, dim: int) -> AbstractHubbardStratonovich:
        """The strategy serving dimension ``dim``."""
        if dim <= self.grid_max_dim:
            return self.grid
        if dim >= self.series_min_dim:
            return self.power_sum
        return self.saddle

    def mean_from_tanh(self, dim, theta, t):
        return self.branch(dim).mean_from_tanh(dim, theta, t)


class TwoSaddle(AbstractCWPosterior):
    """The paper's two-saddle approximation (docs/theory.md §3), in log space::

        eta_i = [W+ Q+ tanh(theta m + g x_i) + W- Q- tanh(-theta m + g x_i)] / (W+ Q+ + W- Q-)

    ``Q± = prod_i (1 ± m tanh(g x_i))``, ``W± = e^{±hm} / (2 cosh(hm))``, and
    ``tanh(±theta m + g x_i) = (±m + t_i)/(1 ± m t_i)`` since ``tanh(theta m) = m``. Needs
    ``theta > 1``. One pass over the coordinates for the log-odds, one for ``eta``.
    """

    name: ClassVar[str] = "two-saddle"

    def check(self, dim, theta):
        check_range("theta (two-saddle posterior)", theta, 1.0, None)

    def __call__(self, dim, theta, h, g, x):
        t = jnp.tanh(g * x)
        m = _clipped_tanh(jnp.arctanh(jnp.minimum(magnetization(theta), 1.0)).astype(t.dtype))
        # log(W+ Q+) - log(W- Q-) in one pass: the ratios lie in [e^-2 theta m, e^2 theta m]
        log_odds = 2 * h * m + _sum_log(lambda t: 1 + m * t, lambda t: 1 - m * t, t, _log_group(theta))
        w_plus = jax.nn.sigmoid(log_odds)
        return w_plus * (m + t) / (1 + m * t) + (1 - w_plus) * (t - m) / (1 - m * t)


class Enumeration(AbstractCWPosterior):
    """Brute force: ``eta = sum_s s e^(theta S^2/(2d) + h S/d + g s.x) / Z`` over all ``2^d`` states
    ``s`` (``d <= 16``): the test oracle, exact to rounding."""

    name: ClassVar[str] = "enumeration"
    max_dim: ClassVar[int] = 16

    def check(self, dim, theta):
        if dim > self.max_dim:
            raise ValueError(f"enumeration needs dim <= {self.max_dim}, got {dim}")

    def __call__(self, dim, theta, h, g, x):
        self.check(dim, theta)
        states = jnp.asarray(((np.arange(2**dim)[:, None] >> np.arange(dim)) & 1) * 2 - 1, x.dtype)
        S = states.sum(axis=1)
        log_w = theta * S**2 / (2 * dim) + h * S / dim + g * states @ x
        return jax.nn.softmax(log_w) @ states


POSTERIORS: dict[str, type[AbstractCWPosterior]] = {
    cls.name: cls for cls in (Exact, TwoSaddle, Grid, Saddle, PowerSum, Enumeration)
}
"""String aliases: ``CurieWeiss(..., posterior=name)`` uses ``POSTERIORS[name]()``."""


def as_posterior(
    posterior: str | AbstractCWPosterior = "exact",
    *,
    nodes: int | None = None,
    newton_steps: int | None = None,
    grid_max_dim: int | None = None,
    grid_nodes: int | None = None,
    series_min_dim: int | None = None,
    series_terms: int | None = None,
    series_tol: float | None = None,
    max_passes: int | None = None,
) -> AbstractCWPosterior:
    """The strategy for ``posterior`` (a strategy, or a name in :data:`POSTERIORS`).

    The keywords are the knobs of the default :class:`Exact` (``None``: the default value):
    ``nodes`` (Gauss–Hermite nodes per peak of :class:`Saddle` and :class:`PowerSum`),
    ``newton_steps`` (:class:`Saddle`), ``grid_nodes`` (:class:`Grid`'s ``nodes``), ``grid_max_dim``
    and ``series_min_dim`` (:class:`Exact`), ``series_terms``, ``series_tol`` and ``max_passes``
    (:class:`PowerSum`). They apply to ``posterior="exact"`` only.
    """

    def pick(**kw):
        return {k: v for k, v in kw.items() if v is not None}

    if not isinstance(posterior, AbstractCWPosterior) and not (
        isinstance(posterior, str) and posterior in POSTERIORS
    ):
        raise ValueError(
            f"posterior must be one of {tuple(POSTERIORS)} or an AbstractCWPosterior, got {posterior!r}"
        )
    given = pick(
        nodes=nodes,
        newton_steps=newton_steps,
        grid_max_dim=grid_max_dim,
        grid_nodes=grid_nodes,
        series_min_dim=series_min_dim,
        series_terms=series_terms,
        series_tol=series_tol,
        max_passes=max_passes,
    )
    if given and not (isinstance(posterior, str) and posterior == "exact"):
        raise ValueError(
            f"{next(iter(given))} applies to posterior='exact' only (got posterior={posterior!r}); pass "
            f"a strategy that owns it instead, e.g. posterior=Saddle(nodes=8)"
        )
    if isinstance(posterior, AbstractCWPosterior):
        return posterior
    if posterior != "exact":
        return POSTERIORS[posterior]()
    return Exact(
        **pick(grid_max_dim=grid_max_dim, series_min_dim=series_min_dim),
        grid=Grid(**pick(nodes=grid_nodes)),
        saddle=Saddle(**pick(nodes=nodes, newton_steps=newton_steps)),
        power_sum=PowerSum(
            **pick(nodes=nodes, series_terms=series_terms, series_tol=series_tol, max_passes=max_passes)
        ),
    )
