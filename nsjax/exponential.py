"""Exponential and multistep integrators of the probability flow, as diffrax solvers (docs/theory.md §7).

Frame. A :class:`~nsjax.solve.FlowTerm` gives ``frame(t) = (alpha, beta, c, tau')`` and the
denoiser ``eta(t, x) = E[x1 | I_tau(t) = x]``. In law ``X_t = a x1 + s z`` with ``a = beta``,
``s = c alpha`` and ``z ~ N(0, I)``; with the half log-SNR ``lambda = log(a / s)`` the flow is, in
data-prediction form (``x/s = e^lambda x1 + z``),

    d(x/s)/d lambda = e^lambda eta,   so   x_t = (s_t/s_u) x_u + s_t int_{lambda_u}^{lambda_t} e^l eta dl,

and in noise-prediction form, with ``rho = s/a = e^-lambda`` and ``eps = (x - a eta)/s``,
``d(x/a)/d rho = eps``. Only the values of ``lambda`` on the grid enter (``tau'`` never does); the
diffusion-model formulas (DPM-Solver++, DEIS, UniPC, iPNDM) read the same with their ``alpha_t``
replaced by ``a`` and their ``sigma_t`` by ``s``.

Exact integrals. With ``h = lambda_t - lambda_u >= 0`` and ``g_k(h) = h phi_k(-h)``::

    g1 = 1 - e^-h,   g2 = 1 - g1/h,   g3 = 1/2 - g2/h      (s_t int e^l (l - lambda_u)^(k-1)/(k-1)! dl
                                                              = a_t h^(k-1) g_k)

computed by series below ``h = 1`` (no cancellation at small steps) and equal to ``1, 1, 1/2`` at
``h = inf``. ``e^-h = (a_u s_t)/(s_u a_t)`` is formed as that ratio, so both ends are exact:

- ``tau = 0`` (``a = 0``, ``lambda = -inf``) at a step start: ``e^-h = 0`` and the first-order step
  is ``x_t = (s_t/s_u) x_u + a_t eta_u``; a history point with ``lambda = -inf`` enters every
  multistep formula with weight 0 (the exact limit: the formula drops to the next lower order);
- ``alpha = 0`` (``s = 0``, ``lambda = +inf``) at a step end: the data-prediction methods take a
  first-order step there, which returns the denoiser ``x_1 = eta_u`` (their higher-order terms
  grow like ``h``), as diffusers' ``final_sigmas_type="zero"`` does; DEIS and iPNDM keep their
  order (their ``rho``-integrals stay finite as ``rho_t -> 0``).

Every coefficient is a scalar guarded with ``jnp.where`` on safe inputs (no NaN under ``grad``),
and each step is one linear combination of the state and the stored denoiser values.

Steps and history. Fixed steps only (``int``, ``PieceSteps``, ``diffrax.StepTo``; an adaptive
controller is refused by :func:`nsjax.solve.check_solve`: these solvers have no error estimate).
The multistep solvers keep past denoiser values (or noise predictions) and their ``(a, s)`` in the
solver state and take any step sizes. Each schedule piece is a separate ``diffeqsolve``, so the
history restarts at a breakpoint (the lower-order warm-up steps run again) unless the solver
``joins_pieces``: then all pieces are one ``diffeqsolve`` on the concatenated grid and the history
crosses the breakpoint (UniPC, DEIS; see :attr:`AbstractExponentialSolver.joins_pieces`).
Evaluations: one denoiser call per step (:meth:`evaluations_per_step` ``(1, 0)``; UniPC's corrector
reuses the next step's call), DPM-Solver-2 two. The history values sit in a ring of ``K + 1``
state-sized slots (:class:`_History`): a step writes its new value into the free slot in place and
reads the others from the written ring, so XLA copies no stored state (a shifted tuple of ``K``
leaves cost a copy of every stored value per step: 6 to 9 times Euler's time per evaluation).

Orders (``tests/test_exponential.py``, GM reduction on a uniform lambda grid): DDIM 1,
DPM-Solver-2 2, 2M 2, 3M 3, UniPC-2 3, DEIS-3 3, iPNDM 2 (its fixed equal-step Adams–Bashforth
weights are exact only on grids uniform in ``rho``). The 3M of DPM-Solver/diffusers/k-diffusion
weighs ``D2 = h^2 eta''/2`` by ``g3`` where the Taylor integral needs ``2 g3``: that form is second
order (``DPMSolverPP3M(coefficients="diffusers")`` keeps it, for comparisons).

A system whose state carries constants must give them a denoised value that is a fixed point of
the flow: :class:`~nsjax.reduction.ReducedGM` returns ``q`` for ``q``, exact for the linear
interpolant only (``x = q`` then has zero velocity), so it is refused with other interpolants.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, NamedTuple

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
from jax import lax

__all__ = [
    "AbstractExponentialSolver",
    "DDIM",
    "DEIS",
    "DPMSolver2",
    "DPMSolverPP2M",
    "DPMSolverPP3M",
    "IPNDM",
    "UniPC",
    "EXPONENTIAL_SOLVERS",
]


# -- scalar helpers ---------------------------------------------------------------------------------
def _safe(x, ok):
    """``x`` where ``ok``, else 1 (a harmless divisor / log argument)."""
    return jnp.where(ok, x, jnp.ones_like(x))


def _dlam(a_hi, s_hi, a_lo, s_lo):
    """``(lambda_hi - lambda_lo, finite)``: ``log(a_hi s_lo / (s_hi a_lo))``, infinite (and replaced
    by 1) when ``a_lo = 0`` or ``s_hi = 0``."""
    num, den = a_hi * s_lo, s_hi * a_lo
    finite = (num > 0) & (den > 0)
    return jnp.log(_safe(num, finite)) - jnp.log(_safe(den, finite)), finite


def _series(h, k: int, terms: int = 20):
    """``g_k(h) = h phi_k(-h) = h sum_n (-h)^n / (n + k)!`` for ``|h| <= 1``."""
    total = jnp.zeros_like(h)
    for n in reversed(range(terms)):
        total = total * (-h) + 1.0 / math.factorial(n + k)
    return h * total


def _g(h, h_finite):
    """``(g1, g2, g3)`` at ``h >= 0`` (``h_finite`` False: ``h = inf``, giving ``1, 1, 1/2``)."""
    small = h < 1
    hs = jnp.where(small, h, jnp.zeros_like(h))
    hl = jnp.where(small | ~h_finite, jnp.ones_like(h), h)
    g1_large = -jnp.expm1(-hl)
    g2_large = 1 - g1_large / hl
    g3_large = 0.5 - g2_large / hl
    out = []
    for k, large, limit in ((1, g1_large, 1.0), (2, g2_large, 1.0), (3, g3_large, 0.5)):
        value = jnp.where(small, _series(hs, k), large)
        out.append(jnp.where(h_finite, value, jnp.full_like(h, limit)))
    return tuple(out)


def _incgamma(h, h_finite, n: int, terms: int = 20):
    """``I_n(h) = int_0^h e^-u u^n / n! du`` (``1`` at ``h = inf``); series below ``h = 1``."""
    small = h < 1
    hs = jnp.where(small, h, jnp.zeros_like(h))
    total = jnp.zeros_like(h)
    for m in reversed(range(terms)):
        total = total + (-hs) ** m * (1.0 / (math.factorial(m) * (n + 1 + m)))
    series = hs ** (n + 1) / math.factorial(n) * total
    hl = jnp.where(small | ~h_finite, jnp.ones_like(h), h)
    tail = jnp.zeros_like(h)
    for j in range(n + 1):
        tail = tail + hl**j / math.factorial(j)
    large = -jnp.expm1(-hl) if n == 0 else 1 - jnp.exp(-hl) * tail
    return jnp.where(h_finite, jnp.where(small, series, large), jnp.ones_like(h))


def _lincomb(pairs: list[tuple[Any, Any]]) -> Any:
    """``sum_i c_i tree_i`` over pytrees, in the dtype of the first tree's leaves."""
    coeffs = [c for c, _ in pairs]
    trees = [t for _, t in pairs]

    def leaf(*xs):
        total = coeffs[0].astype(xs[0].dtype) * xs[0]
        for c, x in zip(coeffs[1:], xs[1:]):
            total = total + c.astype(x.dtype) * x
        return total.astype(xs[0].dtype)

    return jax.tree.map(leaf, *trees)


def _flow_term(terms):
    """The nsjax :class:`~nsjax.solve.FlowTerm` inside diffrax's wrappers."""
    term = terms
    while not (hasattr(term, "frame") and hasattr(term, "denoise")):
        inner = getattr(term, "term", None)
        if inner is None:
            raise TypeError(
                "exponential and multistep solvers need nsjax's FlowTerm (frame and denoiser); "
                f"got {type(terms).__name__}: run them through nsjax.solve"
            )
        term = inner
    _check_system(term)
    return term


def _check_system(term) -> None:
    from .interpolants import Linear
    from .reduction import ReducedGM

    if isinstance(term.system, ReducedGM) and not isinstance(term.interpolant, Linear):
        raise ValueError(
            "interpolant must be Linear for exponential solvers on ReducedGM (its constant q is a "
            f"fixed point of the update only then), got {type(term.interpolant).__name__}"
        )


def _frame(flow, t):
    """``(a, s) = (beta, c alpha)`` at ``t``."""
    alpha, beta, c, _ = flow.frame(t)
    a = jnp.asarray(beta, jnp.result_type(t))
    s = jnp.asarray(c * alpha, jnp.result_type(t))
    return a, s


class _Step(NamedTuple):
    """Scalars of a step ``u -> t``: ratios, ``h`` and the first-order weights."""

    A: Any  # s_t / s_u
    h: Any
    h_finite: Any  # False when a_u = 0 or s_t = 0
    g1: Any
    g2: Any
    g3: Any
    a_t: Any


def _step_scalars(a_u, s_u, a_t, s_t) -> _Step:
    su = _safe(s_u, s_u > 0)
    at = _safe(a_t, a_t > 0)
    E = jnp.where((s_u > 0) & (a_t > 0), a_u * s_t / (su * at), jnp.zeros_like(a_u))
    h, finite = _dlam(a_t, s_t, a_u, s_u)
    g1, g2, g3 = _g(h, finite)
    g1 = jnp.where(finite & (h >= 1), 1 - E, g1)  # the exact ratio where no cancellation
    return _Step(s_t / su, h, finite, g1, g2, g3, a_t)


# -- the solvers ------------------------------------------------------------------------------------
class AbstractExponentialSolver(diffrax.AbstractSolver):
    """A fixed-step solver of ``x = a x1 + s z`` flows that reads the frame and the denoiser of
    :class:`~nsjax.solve.FlowTerm` (not its velocity)."""

    method_order: ClassVar[int] = 1
    joins_pieces: ClassVar[bool] = True
    """Integrate across schedule breakpoints in one solve, history kept (:func:`nsjax.solve.solve`):
    the solver reads the frame and the denoiser at its step points, never ``tau'``. Chosen per
    solver by the NFE to tolerance on the dilated schedules (docs/theory.md §7): DDIM and
    DPM-Solver-2 (no history: the same result either way), UniPC and DEIS join; 2M, 3M and
    iPNDM restart (their extrapolation over the step-size jump at ``t = 1/2`` costs more than
    the warm-up it saves)."""
    term_structure: ClassVar = diffrax.AbstractTerm
    interpolation_cls: ClassVar = diffrax.LocalLinearInterpolation

    def order(self, terms) -> int:
        return self.method_order

    def evaluations_per_step(self) -> tuple[int, int]:
        """``(per_step, once)`` denoiser evaluations."""
        return 1, 0

    def stored_states(self) -> int:
        """State-sized arrays kept between steps (the history ring, one slot more than the
        history; for memory estimates)."""
        return 0

    def func(self, terms, t0, y0, args):
        return terms.vf(t0, y0, args)

    def _done(self, y0, y1, state):
        return y1, None, dict(y0=y0, y1=y1), state, diffrax.RESULTS.successful


class DDIM(AbstractExponentialSolver):
    """Exponential Euler in data prediction (DDIM, DPM-Solver++ order 1), one evaluation per step::

        x_t = (s_t/s_u) x_u + a_t (1 - e^-h) eta_u,   e^-h = a_u s_t / (s_u a_t).

    At ``tau_u = 0``: ``x_t = (s_t/s_u) x_u + a_t eta_u``; at ``alpha_t = 0``: ``x_t = eta_u``.
    """

    def init(self, terms, t0, t1, y0, args):
        return None

    def step(self, terms, t0, t1, y0, args, solver_state, made_jump):
        flow = _flow_term(terms)
        a0, s0 = _frame(flow, t0)
        a1, s1 = _frame(flow, t1)
        m0 = flow.denoise(t0, y0)
        st = _step_scalars(a0, s0, a1, s1)
        y1 = _lincomb([(st.A, y0), (st.a_t * st.g1, m0)])
        return self._done(y0, y1, None)


class DPMSolver2(AbstractExponentialSolver):
    """Single-step DPM-Solver-2 in data prediction (DPM-Solver++(2S), midpoint form), two
    evaluations per step. With ``u`` inside the step, ``r = (lambda_u - lambda_0)/h``::

        x_u = (s_u/s_0) x_0 + a_u g1(r h) eta_0,
        x_t = (s_t/s_0) x_0 + a_t g1(h) [(1 - 1/(2r)) eta_0 + (1/(2r)) eta(u, x_u)].

    ``intermediate="lambda"``: ``u`` is the midpoint in ``lambda`` (``r = 1/2``, found by bisection
    on the schedule); ``"time"``: the midpoint in ``t`` (diffusers' singlestep scheduler on a grid
    that alternates its points). A step from ``tau = 0`` (``lambda_0 = -inf``) uses the time
    midpoint and the limit ``r -> 1``; a step to ``alpha = 0`` is two first-order steps through
    ``u`` and returns ``eta(u, x_u)`` (diffusers' last order-1 pair).
    """

    intermediate: str = eqx.field(static=True, default="lambda")
    method_order: ClassVar[int] = 2

    def __check_init__(self):
        if self.intermediate not in ("lambda", "time"):
            raise ValueError(f"intermediate must be 'lambda' or 'time', got {self.intermediate!r}")

    def evaluations_per_step(self) -> tuple[int, int]:
        return 2, 0

    def init(self, terms, t0, t1, y0, args):
        return None

    def _midpoint(self, flow, t0, t1, a0, s0, h, finite):
        tm = t0 + (t1 - t0) / 2
        if self.intermediate == "time":
            return tm
        target = jnp.where(finite, h / 2, jnp.zeros_like(h))
        iterations = jnp.finfo(jnp.result_type(t0)).nmant + 2

        def body(_, bounds):
            lo, hi = bounds
            mid = lo + (hi - lo) / 2
            a, s = _frame(flow, mid)
            dl, ok = _dlam(a, s, a0, s0)
            below = ok & (dl < target)
            return jnp.where(below, mid, lo), jnp.where(below, hi, mid)

        lo, hi = lax.fori_loop(0, iterations, body, (t0, t1))
        root = lax.stop_gradient(lo + (hi - lo) / 2)

        def offset(t):
            a, s = _frame(flow, t)
            return _dlam(a, s, a0, s0)[0] - target

        # one Newton step: a no-op on the value, the implicit-function derivative of the root
        value, slope = jax.jvp(offset, (root,), (jnp.ones_like(root),))
        good = finite & (slope > 0)
        root = root - jnp.where(good, value / _safe(slope, good), 0.0)
        return jnp.where(finite, root, tm)

    def step(self, terms, t0, t1, y0, args, solver_state, made_jump):
        flow = _flow_term(terms)
        a0, s0 = _frame(flow, t0)
        a1, s1 = _frame(flow, t1)
        whole = _step_scalars(a0, s0, a1, s1)
        tu = self._midpoint(flow, t0, t1, a0, s0, whole.h, whole.h_finite)
        au, su = _frame(flow, tu)
        half = _step_scalars(a0, s0, au, su)
        m0 = flow.denoise(t0, y0)
        xu = _lincomb([(half.A, y0), (half.a_t * half.g1, m0)])
        mu = flow.denoise(tu, xu)
        end = s1 <= 0
        start = (a0 <= 0) & ~end
        ok = whole.h_finite & half.h_finite
        inv2r = whole.h / (2 * _safe(half.h, ok & (half.h > 0)))
        inv2r = jnp.where(end, 1.0, jnp.where(start | ~ok, 0.5, inv2r))
        w = whole.a_t * whole.g1
        y1 = _lincomb([(whole.A, y0), (w * (1 - inv2r), m0), (w * inv2r, mu)])
        return self._done(y0, y1, None)


class _History(NamedTuple):
    """The last ``K`` evaluations and where they were made.

    ``a``, ``s``: most recent first. The values sit in a ring of ``K + 1`` slots (leaves
    ``(K + 1, *shape)``; ``head`` is the most recent one's slot): a step writes its new value into
    the one free slot, in place, and reads the others where they are. A shifted tuple of ``K``
    leaves would make XLA copy every stored value on every step (a while-loop carry cannot be
    permuted in place), several times the memory traffic of the step itself."""

    count: Any  # int32: valid entries
    head: Any  # int32: the slot of the most recent value
    a: Any  # (K,)
    s: Any  # (K,)
    ring: Any  # pytree, leaves (K + 1, *shape)


def _empty_history(y0, t0, size: int) -> _History:
    dtype = jnp.result_type(t0)
    zeros = jnp.zeros((size,), dtype)
    ring = jax.tree.map(lambda leaf: jnp.zeros((size + 1, *jnp.shape(leaf)), jnp.result_type(leaf)), y0)
    count = jnp.zeros((), jnp.int32)
    return _History(count, count, zeros, zeros, ring)


def _previous(pushed: _History, k: int) -> Any:
    """History value ``k`` (1-based, most recent first; zeros while not yet stored) as it was
    before the step's :func:`_push`, read from the pushed ring: the step's update then depends
    on the push, so XLA writes the new value in place before reading (no copy of the ring)."""

    def entry(buffer):
        slots = buffer.shape[0]
        slot = (pushed.head + (slots - k)) % slots
        return lax.dynamic_index_in_dim(buffer, slot, keepdims=False)

    return jax.tree.map(entry, pushed.ring)


def _push(history: _History, a, s, value) -> _History:
    size = history.a.shape[0]
    slots = size + 1
    head = (history.head + 1) % slots

    def store(buffer, new):
        return lax.dynamic_update_index_in_dim(buffer, new.astype(buffer.dtype), head, 0)

    return _History(
        jnp.minimum(history.count + 1, size),
        head,
        jnp.concatenate([a[None].astype(history.a.dtype), history.a[:-1]]),
        jnp.concatenate([s[None].astype(history.s.dtype), history.s[:-1]]),
        jax.tree.map(store, history.ring, value),
    )


def _back(history: _History, a0, s0, k: int):
    """``(lambda_0 - lambda_k, usable)`` of history entry ``k`` (1-based) against point 0."""
    dl, finite = _dlam(a0, s0, history.a[k - 1], history.s[k - 1])
    return dl, finite & (history.count >= k)


def _between(history: _History, i: int, j: int):
    """``lambda_i - lambda_j`` between history entries ``i < j`` (1-based)."""
    return _dlam(history.a[i - 1], history.s[i - 1], history.a[j - 1], history.s[j - 1])


class DPMSolverPP2M(AbstractExponentialSolver):
    """Multistep DPM-Solver++(2M), data prediction, midpoint form, one evaluation per step::

        x_t = (s_t/s_0) x_0 + a_t g1(h) [eta_0 + (eta_0 - eta_1) / (2 r)],   r = (lambda_0 - lambda_1)/h,

    variable steps; first order on a piece's first step (no history), from a history point at
    ``tau = 0`` (``r = inf``) and on a step to ``alpha = 0``. Equal to diffusers'
    ``DPMSolverMultistepScheduler(solver_order=2, algorithm_type="dpmsolver++")``.
    """

    method_order: ClassVar[int] = 2
    joins_pieces: ClassVar[bool] = False

    def stored_states(self) -> int:
        return 2

    def init(self, terms, t0, t1, y0, args):
        return _empty_history(y0, t0, 1)

    def step(self, terms, t0, t1, y0, args, solver_state, made_jump):
        flow = _flow_term(terms)
        a0, s0 = _frame(flow, t0)
        a1, s1 = _frame(flow, t1)
        st = _step_scalars(a0, s0, a1, s1)
        m0 = flow.denoise(t0, y0)
        h1, ok1 = _back(solver_state, a0, s0, 1)
        two = ok1 & st.h_finite
        q = jnp.where(two, st.h / _safe(h1, two), 0.0)  # 1/r
        w = st.a_t * st.g1
        stored = _push(solver_state, a0, s0, m0)
        y1 = _lincomb([(st.A, y0), (w * (1 + q / 2), m0), (-w * q / 2, _previous(stored, 1))])
        return self._done(y0, y1, stored)


class DPMSolverPP3M(AbstractExponentialSolver):
    """Multistep DPM-Solver++(3M), data prediction, one evaluation per step (diffusers' third-order
    update, with ``r0 = h_0/h``, ``r1 = h_1/h``)::

        D1_0 = (eta_0 - eta_1)/r0,  D1_1 = (eta_1 - eta_2)/r1,
        D1 = D1_0 + r0/(r0 + r1) (D1_0 - D1_1),  D2 = (D1_0 - D1_1)/(r0 + r1),
        x_t = (s_t/s_0) x_0 + a_t [g1 eta_0 + g2 D1 + w g3 D2],   w = 2 ("taylor") or 1 ("diffusers").

    Warm-up: first order, then the 2M midpoint step; first order on a step to ``alpha = 0``.

    ``coefficients="taylor"`` (default) weighs ``D2`` by ``2 g3``, the Taylor integral of
    ``D2 = h^2 eta''/2``: third order. ``"diffusers"`` keeps the reference's ``g3`` (DPM-Solver,
    diffusers, k-diffusion): the two agree when ``eta`` is linear in ``lambda``; second order.
    """

    coefficients: str = eqx.field(static=True, default="taylor")
    joins_pieces: ClassVar[bool] = False

    def __check_init__(self):
        if self.coefficients not in ("taylor", "diffusers"):
            raise ValueError(f"coefficients must be 'taylor' or 'diffusers', got {self.coefficients!r}")

    def order(self, terms) -> int:
        return 3 if self.coefficients == "taylor" else 2

    def stored_states(self) -> int:
        return 3

    def init(self, terms, t0, t1, y0, args):
        return _empty_history(y0, t0, 2)

    def step(self, terms, t0, t1, y0, args, solver_state, made_jump):
        flow = _flow_term(terms)
        hist = solver_state
        a0, s0 = _frame(flow, t0)
        a1, s1 = _frame(flow, t1)
        st = _step_scalars(a0, s0, a1, s1)
        m0 = flow.denoise(t0, y0)
        h_0, ok1 = _back(hist, a0, s0, 1)
        h_1, fin12 = _between(hist, 1, 2)
        ok2 = ok1 & fin12 & (hist.count >= 2)
        three = ok2 & st.h_finite
        two = ok1 & st.h_finite & ~three
        h = st.h
        iv0 = jnp.where(ok1 & st.h_finite, h / _safe(h_0, ok1), 0.0)
        iv1 = jnp.where(three, h / _safe(h_1, three), 0.0)
        c = jnp.where(three, h_0 / _safe(h_0 + h_1, three), 0.0)
        e = jnp.where(three, h / _safe(h_0 + h_1, three), 0.0)
        if self.coefficients == "taylor":
            e = 2 * e  # D2 = h^2 eta''/2 needs the weight 2 g3
        g1, g2, g3 = st.g1, st.g2, st.g3
        w0_3 = g1 + g2 * (1 + c) * iv0 + g3 * e * iv0
        w1_3 = -g2 * ((1 + c) * iv0 + c * iv1) - g3 * e * (iv0 + iv1)
        w2_3 = g2 * c * iv1 + g3 * e * iv1
        w0_2, w1_2 = g1 * (1 + iv0 / 2), -g1 * iv0 / 2
        zero = jnp.zeros_like(g1)
        w0 = jnp.where(three, w0_3, jnp.where(two, w0_2, g1))
        w1 = jnp.where(three, w1_3, jnp.where(two, w1_2, zero))
        w2 = jnp.where(three, w2_3, zero)
        a = st.a_t
        stored = _push(hist, a0, s0, m0)
        m1, m2 = _previous(stored, 1), _previous(stored, 2)
        y1 = _lincomb([(st.A, y0), (a * w0, m0), (a * w1, m1), (a * w2, m2)])
        return self._done(y0, y1, stored)


class _UniPCState(NamedTuple):
    history: _History
    last: Any  # the corrected state at history point 1
    order: Any  # int32: the predictor order of the previous step


class UniPC(AbstractExponentialSolver):
    """UniPC (Zhao et al. 2023) with the ``B(h) = e^h - 1`` ("bh2") variant, data prediction,
    ``solver_order`` 1 or 2, as diffusers' ``UniPCMultistepScheduler`` (``predict_x0=True``).

    Step ``k`` evaluates ``eta_0`` at the predicted ``x_0`` once; the corrector UniC first
    replaces ``x_0`` by a corrected value (the previous step redone with ``eta_0`` included), then
    the predictor UniP steps from it. One evaluation per step: the corrector reuses the next
    step's evaluation, so the last step of a piece (and the state saved at each step end) is the
    uncorrected prediction, as in diffusers. UniP-2 is the 2M midpoint step; UniC of order ``p``
    (the previous predictor's order) solves ``R rho = b`` with ``R = [[1, 1], [r, 1]]``,
    ``b_k = k! g_{k+1}/g1``::

        x_0 <- (s_0/s_1) x_1 + a_0 g1 [eta_1 + rho_0 (eta_2 - eta_1)/r + rho_1 (eta_0 - eta_1)]

    (order 1: ``rho_1 = 1/2``). First-order predictor on the first step and to ``alpha = 0``.
    """

    solver_order: int = eqx.field(static=True, default=2)
    method_order: ClassVar[int] = 3

    def __check_init__(self):
        if self.solver_order not in (1, 2):
            raise ValueError(f"solver_order must be 1 or 2, got {self.solver_order}")

    def order(self, terms) -> int:
        return self.solver_order + 1

    def stored_states(self) -> int:
        return 4

    def init(self, terms, t0, t1, y0, args):
        return _UniPCState(_empty_history(y0, t0, 2), y0, jnp.zeros((), jnp.int32))

    def step(self, terms, t0, t1, y0, args, solver_state, made_jump):
        flow = _flow_term(terms)
        hist, last, prev_order = solver_state
        a0, s0 = _frame(flow, t0)
        a1, s1 = _frame(flow, t1)
        m0 = flow.denoise(t0, y0)
        # corrector: the previous step (history point 1 -> point 0) redone with eta_0
        a_p, s_p = hist.a[0], hist.s[0]
        cst = _step_scalars(a_p, s_p, a0, s0)
        correct = hist.count >= 1
        h12, fin12 = _between(hist, 1, 2)
        second = correct & (prev_order >= 2) & fin12 & cst.h_finite
        g1c = _safe(cst.g1, cst.g1 > 0)
        b1, b2 = cst.g2 / g1c, 2 * cst.g3 / g1c
        rk = -h12 / _safe(cst.h, second & (cst.h > 0))  # (lambda_2 - lambda_1)/h
        rk = jnp.where(second, rk, -1.0)
        rho0 = jnp.where(second, (b1 - b2) / (1 - rk), 0.0)
        rho1 = jnp.where(second, b1 - rho0, 0.5)
        wc = cst.a_t * cst.g1
        stored = _push(hist, a0, s0, m0)
        m1, m2 = _previous(stored, 1), _previous(stored, 2)
        # x_0c = A last + wc [m1 + rho0 (m2 - m1)/rk + rho1 (m0 - m1)]
        q = rho0 / rk
        corrected = _lincomb([(cst.A, last), (wc * (1 - q - rho1), m1), (wc * q, m2), (wc * rho1, m0)])
        x0 = jax.tree.map(lambda c, y: jnp.where(correct, c, y), corrected, y0)
        # predictor from the corrected x_0
        st = _step_scalars(a0, s0, a1, s1)
        h1, ok1 = _back(hist, a0, s0, 1)
        two = (self.solver_order >= 2) & ok1 & st.h_finite
        iv = jnp.where(two, st.h / _safe(h1, two), 0.0)
        w = st.a_t * st.g1
        y1 = _lincomb([(st.A, x0), (w * (1 + iv / 2), m0), (-w * iv / 2, m1)])
        order = jnp.where(two, 2, 1).astype(jnp.int32)
        return self._done(y0, y1, _UniPCState(stored, x0, order))


class _VariableOrderMultistep(AbstractExponentialSolver):
    """A multistep method of order ``solver_order`` (lower while its history fills), keeping the
    last ``solver_order - 1`` denoiser values (at least one)."""

    solver_order: eqx.AbstractVar[int]

    def __check_init__(self):
        orders = tuple(range(1, self.method_order + 1))
        if self.solver_order not in orders:
            allowed = ", ".join(map(str, orders[:-1])) + f" or {orders[-1]}"
            raise ValueError(f"solver_order must be {allowed}, got {self.solver_order}")

    def _start(self, terms, t0, t1, y0):
        """``(flow, a0, s0, a1, s1, step scalars, eta_0, eps_0)`` at the start of a step."""
        flow = _flow_term(terms)
        a0, s0 = _frame(flow, t0)
        a1, s1 = _frame(flow, t1)
        m0 = flow.denoise(t0, y0)
        s0s = _safe(s0, s0 > 0)
        eps0 = _lincomb([(1 / s0s, y0), (-a0 / s0s, m0)])
        return flow, a0, s0, a1, s1, _step_scalars(a0, s0, a1, s1), m0, eps0

    def order(self, terms) -> int:
        return self.solver_order

    def stored_states(self) -> int:
        return max(self.solver_order - 1, 1) + 1

    def init(self, terms, t0, t1, y0, args):
        return _empty_history(y0, t0, max(self.solver_order - 1, 1))


class DEIS(_VariableOrderMultistep):
    """DEIS with the ``rho``-AB multistep rule (Zhang & Chen 2023; diffusers'
    ``DEISMultistepScheduler``, ``algorithm_type="deis"``), ``solver_order`` 1 to 3, one evaluation per
    step. The noise prediction ``eps = (x - a eta)/s`` is interpolated by a Lagrange polynomial
    in ``log rho = -lambda`` through the last ``order`` points and integrated exactly in ``rho``::

        x_t = a_t eta_0 + s_t eps_0 - a_t rho_0 sum_{j>=1} c_j (eps_j - eps_0),
        c_j = int_0^h e^-u L_j(u) du,   u = lambda - lambda_0,

    (``c_j`` from ``I_n(h) = int_0^h e^-u u^n/n! du``, finite at ``h = inf``, so the step to
    ``alpha = 0`` keeps its order). Lower orders while the history fills.
    """

    solver_order: int = eqx.field(static=True, default=3)
    method_order: ClassVar[int] = 3


    def step(self, terms, t0, t1, y0, args, solver_state, made_jump):
        flow, a0, s0, a1, s1, st, m0, eps0 = self._start(terms, t0, t1, y0)
        hist = solver_state
        stored = _push(hist, a0, s0, eps0)
        pairs = [(st.A, y0), (st.a_t * st.g1, m0)]
        if self.solver_order >= 2:
            h, fin = st.h, st.h_finite
            I1 = _incgamma(h, fin, 1)
            I2 = _incgamma(h, fin, 2)
            h1, ok1 = _back(hist, a0, s0, 1)
            u1 = -h1
            scale = a1 * s0 / _safe(a0, a0 > 0)  # a_t rho_0
            if self.solver_order >= 3:
                h2, ok2 = _back(hist, a0, s0, 2)
                ok2 = ok2 & ok1
                u2 = -h2
            else:
                ok2 = jnp.zeros((), bool)
                u2 = jnp.zeros_like(u1)
            two = ok1 & ~ok2
            u1s = _safe(u1, ok1)
            c1_2 = I1 / u1s
            d12 = _safe(u1 - u2, ok2)
            u2s = _safe(u2, ok2)
            c1_3 = (2 * I2 - u2 * I1) / (u1s * d12)
            c2_3 = (2 * I2 - u1 * I1) / (u2s * -d12)
            c1 = jnp.where(ok2, c1_3, jnp.where(two, c1_2, 0.0))
            c2 = jnp.where(ok2, c2_3, 0.0)
            pairs += [(-scale * c1, _previous(stored, 1)), (scale * (c1 + c2), eps0)]
            if self.solver_order >= 3:
                pairs.append((-scale * c2, _previous(stored, 2)))
        y1 = _lincomb(pairs)
        return self._done(y0, y1, stored)


_AB = ((1.0,), (1.5, -0.5), (23 / 12, -16 / 12, 5 / 12), (55 / 24, -59 / 24, 37 / 24, -9 / 24))
"""Adams–Bashforth weights of equal steps, most recent first."""


class IPNDM(_VariableOrderMultistep):
    """Improved pseudo-numerical method (iPNDM; Zhang & Chen 2023, diffusers' ``IPNDMScheduler``),
    ``solver_order`` 1 to 4, one evaluation per step: the DDIM step in noise-prediction form with ``eps``
    replaced by its Adams–Bashforth combination ``E`` over the last steps (fixed equal-step
    weights, lower orders while the history fills)::

        x_t = (a_t/a_0) (x_0 - s_0 E) + s_t E = a_t eta_0 + s_t eps_0 + a_t (rho_t - rho_0)(E - eps_0).
    """

    solver_order: int = eqx.field(static=True, default=4)
    method_order: ClassVar[int] = 4
    joins_pieces: ClassVar[bool] = False


    def step(self, terms, t0, t1, y0, args, solver_state, made_jump):
        flow, a0, s0, a1, s1, st, m0, eps0 = self._start(terms, t0, t1, y0)
        hist = solver_state
        stored = _push(hist, a0, s0, eps0)
        used = jnp.minimum(hist.count + 1, self.solver_order)
        # a_t (rho_t - rho_0) = s_t - a_t s_0 / a_0 (history exists only when a_0 > 0)
        scale = jnp.where(a0 > 0, s1 - a1 * s0 / _safe(a0, a0 > 0), 0.0)
        pairs = [(st.A, y0), (st.a_t * st.g1, m0)]
        weights = [jnp.zeros_like(a0) for _ in range(self.solver_order)]
        for n in range(1, self.solver_order + 1):
            for j, beta in enumerate(_AB[n - 1]):
                weights[j] = weights[j] + jnp.where(used == n, beta, 0.0)
        # E - eps_0 = (w_0 - 1) eps_0 + sum_{j>=1} w_j eps_j
        pairs.append((scale * (weights[0] - 1), eps0))
        for j in range(1, self.solver_order):
            pairs.append((scale * weights[j], _previous(stored, j)))
        y1 = _lincomb(pairs)
        return self._done(y0, y1, stored)


EXPONENTIAL_SOLVERS: dict[str, type[AbstractExponentialSolver]] = {
    "ddim": DDIM,
    "dpm-solver-2": DPMSolver2,
    "dpmpp-2m": DPMSolverPP2M,
    "dpmpp-3m": DPMSolverPP3M,
    "unipc": UniPC,
    "deis": DEIS,
    "ipndm": IPNDM,
}
"""Names in :data:`nsjax.solvers.SOLVERS`."""
