"""The solver table: every Runge–Kutta tableau nsjax uses, by name, with its NFE accounting.

``SOLVERS`` maps a name to a diffrax solver class: ``euler``; the fused fixed-step forms
``heun``, ``midpoint``, ``ralston``, ``rk4`` (below); diffrax's generic ``diffrax-heun``,
``diffrax-midpoint``, ``diffrax-ralston``, ``diffrax-rk4`` (:class:`RK4`, built from
:class:`FusedRK4`'s tableau: one RK4 tableau in the package); the adaptive ``bosh3``, ``tsit5``,
``dopri5``; the exponential and multistep integrators of :mod:`nsjax.exponential` (fixed steps:
``ddim``, ``dpm-solver-2``, ``dpmpp-2m``, ``dpmpp-3m``, ``unipc``, ``deis``, ``ipndm``).
:func:`evaluations_per_step` counts velocity evaluations (checked against a run-time
counter in ``tests/test_solve.py``).

Fused fixed-step explicit Runge–Kutta solvers (a performance layer, same API):

diffrax's generic :class:`diffrax.AbstractERK` runs its stages in a loop over a stacked stage
buffer ``k`` of shape ``(stages, *y.shape)``: every stage writes one slice
(``dynamic_update_slice``) and forms ``a_i . k`` as a dot product over the stage axis, which XLA
lowers with a transposed copy of the whole buffer, and every step also forms the embedded error
estimate and the dense-output coefficients. On a memory-bound vector field (the GM velocity reads
and writes each coordinate once) that traffic dominates: Heun measured ~3x Euler's cost per
velocity evaluation at ``d = 1e6`` (``benchmarks/throughput.py``).

The solvers here are the same tableaus with the stages unrolled in Python: each stage is
``y_i = y0 + sum_{j<i, a_ij != 0} a_ij k_j`` with ``k_j = h f(t0 + c_j h, y_j)``, the step is
``y1 = y0 + sum_j b_j k_j``; there is no stage buffer, no error estimate and no dense output
beyond the step's end points (linear interpolation, as :class:`diffrax.Euler`). When the field
is a few reductions followed by a cheap per-coordinate map (the GM velocity), XLA then recomputes
each stage state inside the next stage's reduction instead of storing it: an ``s``-stage step
reads ``y0`` ``s`` times and writes ``y1`` once, ``4 (s + 2)`` bytes per coordinate in float32
(RK4: 6 per evaluation, Euler: 12). That needs reductions XLA can fuse with their producer:
XLA:CPU rewrites a sum over more than 32 elements into a tree of reduce-windows that does not,
and RK4 then stored three stage states (17 bytes per evaluation); the GM target sums through
:func:`nsjax.targets._sums.coordinate_sum`. Bytes per step are checked against XLA's own count
in ``tests/test_solvers.py``. They are ``diffrax.AbstractSolver``s and run
through ``diffrax.diffeqsolve`` like any other; results agree with diffrax's ERK of the same
tableau to rounding (``tests/test_solvers.py``). Fixed steps only: adaptive solves use diffrax's
embedded-error version of the same tableau (:attr:`AbstractFusedRK.adaptive`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import diffrax
import jax
import numpy as np
from diffrax._local_interpolation import ThirdOrderHermitePolynomialInterpolation

from .exponential import EXPONENTIAL_SOLVERS

__all__ = [
    "ADAPTIVE",
    "AbstractFusedRK",
    "FusedHeun",
    "FusedMidpoint",
    "FusedRalston",
    "FusedRK4",
    "RK4",
    "SOLVERS",
    "adaptive_form",
    "evaluations_per_step",
    "is_adaptive",
    "make_solver",
]


def _combine(y0: Any, coefficients: tuple[float, ...], ks: list[Any]) -> Any:
    """``y0 + sum_j coefficients[j] k_j`` over the pytree, skipping zero coefficients."""
    used = [(c, k) for c, k in zip(coefficients, ks) if c != 0]
    if not used:
        return y0
    cs = [c for c, _ in used]

    def leaf(y, *k_leaves):
        increment = cs[0] * k_leaves[0]
        for c, k in zip(cs[1:], k_leaves[1:]):
            increment = increment + c * k
        return y + increment.astype(y.dtype)

    return jax.tree.map(leaf, y0, *[k for _, k in used])


class AbstractFusedRK(diffrax.AbstractSolver):
    """An explicit Runge–Kutta tableau, stages unrolled, fixed steps only.

    Subclasses set ``c`` (stage times, ``c[0] = 0``), ``a`` (rows of the strictly lower
    triangle, row ``i`` of length ``i``), ``b`` (weights) and ``method_order``.
    """

    c: ClassVar[tuple[float, ...]]
    a: ClassVar[tuple[tuple[float, ...], ...]]
    b: ClassVar[tuple[float, ...]]
    method_order: ClassVar[int]
    adaptive: ClassVar[type[diffrax.AbstractSolver] | None] = None
    """diffrax's solver with the same tableau and an embedded error (for adaptive steps)."""

    term_structure: ClassVar = diffrax.AbstractTerm
    interpolation_cls: ClassVar[Callable[..., diffrax.LocalLinearInterpolation]] = (
        diffrax.LocalLinearInterpolation
    )

    def order(self, terms) -> int:
        return self.method_order

    def evaluations_per_step(self) -> tuple[int, int]:
        """``(per_step, once)``: one velocity evaluation per stage, nothing reused."""
        return len(self.b), 0

    def init(self, terms, t0, t1, y0, args) -> None:
        return None

    def step(self, terms, t0, t1, y0, args, solver_state, made_jump):
        """One step ``t0 -> t1``; returns ``(y1, None, dense_info, None, successful)``."""
        del solver_state, made_jump
        h = t1 - t0
        ks: list[Any] = []
        for i, (c_i, a_i) in enumerate(zip(self.c, ((),) + self.a)):
            y_i = _combine(y0, a_i, ks) if i else y0
            t_i = t0 + c_i * h if c_i else t0
            ks.append(terms.vf_prod(t_i, y_i, args, terms.contr(t0, t1)))
        y1 = _combine(y0, self.b, ks)
        return y1, None, dict(y0=y0, y1=y1), None, diffrax.RESULTS.successful

    def func(self, terms, t0, y0, args):
        return terms.vf(t0, y0, args)


class FusedHeun(AbstractFusedRK):
    """Heun's method (explicit trapezoid), order 2: ``y1 = y0 + (k1 + k2)/2``."""

    c = (0.0, 1.0)
    a = ((1.0,),)
    b = (0.5, 0.5)
    method_order = 2
    adaptive = diffrax.Heun


class FusedMidpoint(AbstractFusedRK):
    """Explicit midpoint method, order 2: ``y1 = y0 + k2``, ``k2 = h f(t0 + h/2, y0 + k1/2)``."""

    c = (0.0, 0.5)
    a = ((0.5,),)
    b = (0.0, 1.0)
    method_order = 2
    adaptive = diffrax.Midpoint


class FusedRalston(AbstractFusedRK):
    """Ralston's second-order method: ``c2 = 2/3``, ``b = (1/4, 3/4)``."""

    c = (0.0, 2 / 3)
    a = ((2 / 3,),)
    b = (0.25, 0.75)
    method_order = 2
    adaptive = diffrax.Ralston


class FusedRK4(AbstractFusedRK):
    """The classical fourth-order Runge–Kutta method."""

    c = (0.0, 0.5, 0.5, 1.0)
    a = ((0.5,), (0.0, 0.5), (0.0, 0.0, 1.0))
    b = (1 / 6, 1 / 3, 1 / 3, 1 / 6)
    method_order = 4


class RK4(diffrax.AbstractERK):
    """The classical RK4 as a generic diffrax ERK (stacked stages; no embedded error, so fixed
    steps only): :class:`FusedRK4`'s tableau, for comparisons with diffrax's machinery.

    ``ThirdOrderHermitePolynomialInterpolation`` is diffrax's dense output for 4-stage ERKs; it
    is not exported by ``diffrax`` (imported from ``diffrax._local_interpolation``, as
    ``diffrax.Tsit5``'s siblings do), and only dense output (unused by nsjax) depends on it.
    """

    tableau = diffrax.ButcherTableau(
        c=np.asarray(FusedRK4.c[1:]),
        b_sol=np.asarray(FusedRK4.b),
        b_error=np.zeros(len(FusedRK4.b)),
        a_lower=tuple(np.asarray(row) for row in FusedRK4.a),
    )
    interpolation_cls = ThirdOrderHermitePolynomialInterpolation.from_k

    def order(self, terms):
        return FusedRK4.method_order


SOLVERS: dict[str, type[diffrax.AbstractSolver]] = {
    "euler": diffrax.Euler,
    # fixed steps: fused forms of the tableaus, equal to diffrax's to rounding
    "heun": FusedHeun,
    "midpoint": FusedMidpoint,
    "ralston": FusedRalston,
    "rk4": FusedRK4,
    # diffrax's generic Runge–Kutta (stacked stages, error estimate, dense output)
    "diffrax-heun": diffrax.Heun,
    "diffrax-midpoint": diffrax.Midpoint,
    "diffrax-ralston": diffrax.Ralston,
    "diffrax-rk4": RK4,
    "bosh3": diffrax.Bosh3,
    "tsit5": diffrax.Tsit5,
    "dopri5": diffrax.Dopri5,
    # exponential and multistep integrators on the frame and denoiser (nsjax.exponential)
    **EXPONENTIAL_SOLVERS,
}
ADAPTIVE = ("bosh3", "tsit5", "dopri5", "heun")
"""Names that can take adaptive steps (``heun`` through its embedded-error form)."""


def make_solver(name: str) -> diffrax.AbstractSolver:
    """A solver by name (``SOLVERS``): ``heun``/``midpoint``/``ralston``/``rk4`` are the fused
    fixed-step forms; ``diffrax-<name>`` diffrax's generic ones."""
    if name not in SOLVERS:
        raise ValueError(f"solver must be one of {sorted(SOLVERS)}, got {name!r}")
    return SOLVERS[name]()


def adaptive_form(solver: diffrax.AbstractSolver) -> diffrax.AbstractSolver:
    """The solver to use for adaptive steps: a fused tableau's embedded-error twin, else itself."""
    if isinstance(solver, AbstractFusedRK) and solver.adaptive is not None:
        return solver.adaptive()
    return solver


def is_adaptive(solver: diffrax.AbstractSolver) -> bool:
    """Whether ``solver`` has an error estimate a step-size controller can use."""
    return isinstance(solver, diffrax.AbstractAdaptiveSolver) and not isinstance(
        solver, (diffrax.Euler, RK4)
    )


def evaluations_per_step(solver: diffrax.AbstractSolver) -> tuple[int, int]:
    """``(per_step, once)``: velocity evaluations per step and once per solve.

    First-same-as-last Runge–Kutta tableaus reuse the last stage (``once = 1`` for the first
    evaluation). Checked against a run-time counter in ``tests/test_solve.py``.
    """
    custom = getattr(solver, "evaluations_per_step", None)
    if custom is not None:
        return custom()
    if isinstance(solver, diffrax.Euler):
        return 1, 0
    if isinstance(solver, diffrax.AbstractERK):
        stages = len(solver.tableau.b_sol)
        return (stages - 1, 1) if solver.tableau.fsal else (stages, 0)
    raise TypeError(f"unknown evaluation count for solver {type(solver).__name__}")
