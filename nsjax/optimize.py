"""Optimise a schedule with optax against exact errors (docs/theory.md §8): ``nsjax optimize``.

The trainable parameters are the array leaves of a :class:`~nsjax.schedules.TwoPhase` (``log_kappa``
and the two warps' coefficients); its ``dim`` is a Python float and stays fixed. An objective is any
scalar function of the schedule; :func:`gm_objective` builds the exact one of
:mod:`nsjax.objectives` over a grid of dimensions, so that one schedule serves every ``d``, and
over a family of GM targets (``nsjax optimize --family p:sigma2,...``), so that it serves their
range of mode weights and variances rather than one GM.

The default optimiser is Adam (``optax.adam``, learning rate 0.05) with the best iterate kept and
early stopping after ``patience`` steps without improvement; ``"lbfgs"`` (``optax.lbfgs`` with its
zoom line search) is the alternative (docs/theory.md §8 gives the measured comparison).
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from ._checks import check_dim, check_positive
from .interpolants import make_interpolant
from .objectives import GMErrors, gm_errors, tolerance_loss
from .registry import noise_scale
from .schedules import TwoPhase
from .solve import StepSpec
from .solvers import evaluations_per_step, make_solver
from .targets.gaussian_mixture import GaussianMixture

__all__ = [
    "OptimizeResult",
    "optimize",
    "check_objective",
    "reduce_losses",
    "gm_family",
    "gm_objective",
    "gm_table",
    "add_parser",
]


class OptimizeResult(NamedTuple):
    """What :func:`optimize` returns."""

    schedule: Any
    """The best iterate (lowest objective)."""
    history: list[float]
    """Objective value at each step (before the step's update)."""
    best_loss: float
    num_steps: int
    stopped_early: bool
    wall_seconds: float


def at_dim(schedule: TwoPhase, dim: Any) -> TwoPhase:
    """``schedule`` with its dimension replaced by ``dim`` (may be traced)."""
    return TwoPhase(
        schedule.log_kappa, dim, schedule.first, schedule.second, noise=schedule.noise, split=schedule.split
    )


def _gm_errors_at(target, schedule, dim, solver, steps, adjoint, target_dim=None) -> GMErrors:
    """Errors of ``schedule`` tuned for ``dim`` (its dilation and noise scale) on ``target`` at
    ``target_dim`` (default ``dim``)."""
    c = noise_scale(schedule.noise, dim)
    return gm_errors(
        target,
        make_interpolant("linear", c),
        at_dim(schedule, dim),
        steps=steps,
        solver=solver,
        dim=dim if target_dim is None else target_dim,
        adjoint=adjoint,
    )


GMTargets = GaussianMixture | Sequence[GaussianMixture]


def gm_family(targets: GMTargets) -> tuple[GaussianMixture, bool]:
    """``(stacked, is_family)``: one :class:`GaussianMixture` whose ``p`` and ``sigma2`` have a
    leading axis of length ``K`` (one per member; ``jax.vmap`` over it), or ``target`` itself
    (``is_family=False``) for a single target. Members must share ``dim`` and have
    ``direction=None`` (the exact reduction at a traced ``d`` needs ``|r|^2 = d``)."""
    if isinstance(targets, GaussianMixture):
        return targets, False
    members = list(targets)
    if not members or not all(isinstance(t, GaussianMixture) for t in members):
        raise ValueError(
            f"target must be a GaussianMixture or a non-empty sequence of them, got {targets!r}"
        )
    if len({t.dim for t in members}) != 1 or any(t.direction is not None for t in members):
        raise ValueError("a family of GM targets must share dim and have direction=None")
    dtype = jnp.result_type(float)
    stacked = jax.tree.map(lambda *leaves: jnp.stack([jnp.asarray(v, dtype) for v in leaves]), *members)
    return stacked, True


def _dim_grid(dims: Sequence[float]) -> jax.Array:
    return jnp.asarray([float(d) for d in dims], jnp.result_type(float))


def _check_ratios(dim_ratios: Sequence[float] | None) -> jax.Array | None:
    if dim_ratios is None:
        return None
    ratios = [float(a) for a in dim_ratios]
    if not ratios or any(not (0 < a < math.inf) for a in ratios):
        raise ValueError(f"dim_ratios must be a non-empty sequence of numbers in (0, inf), got {dim_ratios}")
    return jnp.asarray(ratios, jnp.result_type(float))


def _errors_over(target, family, schedule, grid, solver, steps, adjoint, ratios=None) -> GMErrors:
    """:class:`GMErrors` with axes ``[d]`` (one target) or ``[member, d]`` (a family), and a last
    axis ``[ratio]`` when ``ratios`` (target at ``ratio * d``, schedule tuned for ``d``) is given."""

    def at(target, d):
        if ratios is None:
            return _gm_errors_at(target, schedule, d, solver, steps, adjoint)
        return jax.vmap(lambda a: _gm_errors_at(target, schedule, d, solver, steps, adjoint, a * d))(ratios)

    def over_dims(target):
        return jax.vmap(lambda d: at(target, d))(grid)

    return jax.vmap(over_dims)(target) if family else over_dims(target)


def gm_table(
    target: GMTargets,
    schedule: TwoPhase,
    dims: Sequence[float],
    *,
    solver: diffrax.AbstractSolver,
    steps: StepSpec,
    dim_ratios: Sequence[float] | None = None,
) -> GMErrors:
    """:func:`~nsjax.objectives.gm_errors` of ``schedule`` at each of ``dims`` (leading axis), or
    for a sequence of targets (a family, :func:`gm_family`) axes ``[member, d]``, and a last axis
    ``[ratio]`` with ``dim_ratios`` (as in :func:`gm_objective`); one program."""
    stacked, family = gm_family(target)
    grid, ratios = _dim_grid(dims), _check_ratios(dim_ratios)

    @eqx.filter_jit
    def run(schedule, stacked, grid, ratios):
        return _errors_over(stacked, family, schedule, grid, solver, steps, None, ratios)

    return run(schedule, stacked, grid, ratios)


def check_objective(dims: Sequence[float], reduce: str, **tolerances: float) -> list[float]:
    """The ``d`` grid of an objective (floats), after checking ``dims`` (non-empty, each
    ``d >= 1``), ``reduce`` (``"sum"`` or ``"max"``) and each named tolerance (``> 0``)."""
    if reduce not in ("sum", "max"):
        raise ValueError(f"reduce must be 'sum' or 'max', got {reduce!r}")
    for name, value in tolerances.items():
        check_positive(name, value)
    dims = [float(d) for d in dims]
    if not dims:
        raise ValueError("dims must hold at least one dimension d >= 1")
    if any(not math.isfinite(d) or d < 1 for d in dims):
        raise ValueError(f"dims must be dimensions d >= 1, got {dims}")
    return dims


def reduce_losses(terms: jax.Array, reduce: str) -> jax.Array:
    """``sum(terms)`` (``reduce="sum"``) or its smooth maximum ``log sum exp(terms)`` (``"max"``)."""
    return jnp.sum(terms) if reduce == "sum" else jax.nn.logsumexp(terms)


def gm_objective(
    target: GMTargets,
    dims: Sequence[float],
    *,
    solver: diffrax.AbstractSolver,
    steps: StepSpec,
    reduce: str = "sum",
    p_tol: float = 0.01,
    sigma2_tol: float = 0.02,
    dim_ratios: Sequence[float] | None = None,
) -> Callable[[TwoPhase], jax.Array]:
    """``schedule -> loss``: :func:`~nsjax.objectives.tolerance_loss` at each ``d`` of ``dims``
    and, for a sequence of targets (a family of GMs, :func:`gm_family`), each member,

        L = sum_{k, d, a} l_k(d, a)    (reduce="sum")    or    log sum exp l_k(d, a)    ("max"),

    where ``l_k(d, a)`` is the loss of the schedule tuned for ``d`` (its dilation and noise scale)
    on member ``k`` at dimension ``a d`` (``|r|^2 = a d``) for each ``a`` of ``dim_ratios``
    (default: ``a = 1`` only, no extra axis): ``a < 1`` puts the modes closer than the schedule
    assumes, as the pairs of modes of a K-mode mixture (``|m_k - m_l|^2 / 4 = d / 2``: ``a = 1/2``).
    One program (``jax.vmap`` over members, ``d`` and ``a``); differentiable in forward mode
    (``diffrax.ForwardMode``: cheaper to compile than reverse mode for a few dozen parameters,
    measured)."""
    dims = check_objective(dims, reduce, p_tol=p_tol, sigma2_tol=sigma2_tol)
    stacked, family = gm_family(target)
    grid, ratios = _dim_grid(dims), _check_ratios(dim_ratios)
    adjoint = diffrax.ForwardMode()

    def loss(schedule: TwoPhase) -> jax.Array:
        errors = _errors_over(stacked, family, schedule, grid, solver, steps, adjoint, ratios)
        return reduce_losses(tolerance_loss(errors, p_tol, sigma2_tol), reduce)

    return loss


def _optimizer(name: str, learning_rate: float) -> optax.GradientTransformation:
    if name == "adam":
        return optax.adam(learning_rate)
    if name == "lbfgs":
        # optax's default zoom line search differentiates value_fn in reverse mode, which the
        # forward-mode objectives cannot (diffrax's while loops); backtracking needs values only.
        return optax.lbfgs(linesearch=optax.scale_by_backtracking_linesearch(max_backtracking_steps=20))
    raise ValueError(f"optimizer must be 'adam' or 'lbfgs', got {name!r}")


def optimize(
    objective: Callable[[Any], jax.Array],
    schedule: Any,
    *,
    optimizer: str = "adam",
    learning_rate: float = 0.05,
    num_steps: int = 300,
    patience: int = 60,
    target_loss: float = 0.0,
    progress: bool = False,
) -> OptimizeResult:
    """Minimise ``objective(schedule)`` over the schedule's array leaves with optax.

    Gradients by forward mode (``jax.jacfwd``; the objectives of :mod:`nsjax.objectives` use
    ``diffrax.ForwardMode``). Stops after ``num_steps``, after ``patience`` steps without a new
    best, or when the objective falls below ``target_loss``; a non-finite objective stops the run
    with an error naming the step. Returns the best iterate.
    """
    num_steps = check_dim("num_steps", num_steps)
    patience = check_dim("patience", patience)
    check_positive("learning_rate", learning_rate)
    params, static = eqx.partition(schedule, eqx.is_inexact_array)
    opt = _optimizer(optimizer, learning_rate)
    value = lambda p: objective(eqx.combine(p, static))  # noqa: E731

    @jax.jit
    def step(p, state):
        loss, grad = value(p), jax.jacfwd(value)(p)
        if optimizer == "lbfgs":
            updates, state = opt.update(grad, state, p, value=loss, grad=grad, value_fn=value)
        else:
            updates, state = opt.update(grad, state, p)
        return optax.apply_updates(p, updates), state, loss

    state = opt.init(params)
    history: list[float] = []
    best, best_params, since = math.inf, params, 0
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=num_steps, desc="optimize", unit="step")
    start = time.perf_counter()
    stopped_early = False
    for k in range(num_steps):
        new_params, state, loss = step(params, state)
        loss = float(loss)
        if not math.isfinite(loss):
            if bar is not None:
                bar.close()
            raise FloatingPointError(
                f"the objective is not finite at optimisation step {k} ({loss}); the sampler's "
                "flow map is not monotone or a solve failed: lower the learning rate or raise steps"
            )
        history.append(loss)
        if loss < best:
            best, best_params, since = loss, params, 0
        else:
            since += 1
        params = new_params
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.4g}", best=f"{best:.4g}")
        if since >= patience or best <= target_loss:
            stopped_early = True
            break
    if bar is not None:
        bar.close()
    return OptimizeResult(
        eqx.combine(best_params, static),
        history,
        best,
        len(history),
        stopped_early,
        time.perf_counter() - start,
    )


# -- nsjax optimize --------------------------------------------------------------------------------
def _dims(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"must be a comma-separated list of dimensions >= 1, got {text!r}"
        ) from None
    if not values or any(not math.isfinite(v) or v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"must be a comma-separated list of dimensions >= 1, got {text!r}")
    return values


def _ratios(text: str) -> list[float]:
    allowed = "a comma-separated list of numbers in (0, inf)"
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be {allowed}, got {text!r}") from None
    if not values or any(not (0 < v < math.inf) for v in values):
        raise argparse.ArgumentTypeError(f"must be {allowed}, got {text!r}")
    return values


def _family(text: str) -> list[tuple[float, float]]:
    """``p:sigma2,p:sigma2,...`` -> ``[(p, sigma2), ...]``, each ``p`` in (0, 1), ``sigma2 > 0``."""
    allowed = "comma-separated p:sigma2 pairs with p in (0, 1) and sigma2 in (0, inf)"
    members = []
    for item in (v.strip() for v in text.split(",")):
        parts = item.split(":")
        try:
            p, sigma2 = (float(v) for v in parts) if len(parts) == 2 else (math.nan, math.nan)
        except ValueError:
            p = sigma2 = math.nan
        if not (0 < p < 1 and 0 < sigma2 < math.inf):
            raise argparse.ArgumentTypeError(f"must be {allowed}, got {item!r} in {text!r}")
        members.append((p, sigma2))
    return members


def add_parser(sub) -> None:
    from .cli import add_target_arguments, positive_float, positive_int
    from .solvers import SOLVERS

    parser = sub.add_parser(
        "optimize",
        help="learn a schedule against exact errors and save it as JSON",
        description="Optimise a two-phase schedule (the paper's dilation with learnable warps) "
        "with optax against the exact GM feature errors at a fixed solver and step count, over "
        "several d at once. The saved file works wherever a schedule name does: "
        "--schedule file:FILE.json.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add_target_arguments(parser)
    parser.add_argument("--noise", choices=("vp", "ve"), default="vp", help="interpolant noise")
    parser.add_argument("--solver", choices=sorted(SOLVERS), default="heun", help="fixed-step solver")
    parser.add_argument("--steps", type=positive_int, default=6, help="solver steps N (>= 2)")
    parser.add_argument(
        "--dims",
        "--d-grid",
        dest="dims",
        type=_dims,
        default=[1e3, 1e6, 1e9],
        help="comma-separated dimensions the loss is summed over",
    )
    parser.add_argument(
        "--family",
        type=_family,
        default=None,
        metavar="P:SIGMA2,...",
        help="train on a family of GM targets (the loss summed over members x d), e.g. "
        "0.8:0.25,0.3:0.5,0.5:1,0.2:2; replaces --p/--sigma2; None: the one GM of --p, --sigma2",
    )
    parser.add_argument(
        "--dim-ratios",
        type=_ratios,
        default=None,
        metavar="A,...",
        help="also train on each GM at dimension a*d with the schedule tuned for d (|r|^2 = a d), "
        "e.g. 0.5,1 (a = 1/2: the mode pairs of a K-mode mixture); None: a = 1 only",
    )
    parser.add_argument("--coefficients", type=positive_int, default=4, help="warp parameters per phase")
    parser.add_argument("--split", type=float, default=0.5, help="breakpoint time in (0, 1)")
    parser.add_argument("--kappa", type=positive_float, default=3.0, help="starting kappa (paper's dilation)")
    parser.add_argument("--optimizer", choices=("adam", "lbfgs"), default="adam")
    parser.add_argument("--learning-rate", type=positive_float, default=0.05, help="Adam step size")
    parser.add_argument("--iterations", type=positive_int, default=300, help="optimisation steps")
    parser.add_argument("--patience", type=positive_int, default=60, help="early-stopping patience")
    parser.add_argument("--reduce", choices=("sum", "max"), default="sum", help="loss over the d grid")
    parser.add_argument("--out", metavar="FILE.json", default="schedule.json", help="schedule file")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    gm_defaults = (parser.get_default("p"), parser.get_default("sigma2"))
    parser.set_defaults(func=run_optimize, out_is_folder=True, gm_defaults=gm_defaults)


def run_optimize(args) -> dict:
    from .schedule_files import save_schedule

    if args.target != "gm":
        raise argparse.ArgumentTypeError("--target must be gm for nsjax optimize (exact errors)")
    if not 0 < args.split < 1:
        raise argparse.ArgumentTypeError(f"--split must lie in (0, 1), got {args.split}")
    if args.steps < 2:
        raise argparse.ArgumentTypeError(f"--steps must be >= 2 (one per phase), got {args.steps}")
    smallest = min(args.dims)
    if args.kappa >= math.sqrt(smallest):
        raise argparse.ArgumentTypeError(
            f"--kappa must lie in (0, sqrt(min d)) = (0, {math.sqrt(smallest):.4g}), got {args.kappa}"
        )
    if args.family is not None:
        if (args.p, args.sigma2) != args.gm_defaults:
            raise argparse.ArgumentTypeError("--family replaces --p and --sigma2: give one or the other")
        members = [GaussianMixture(dim=int(smallest), p=p, sigma2=s2) for p, s2 in args.family]
        target: Any = members
        described = [{"p": p, "sigma2": s2} for p, s2 in args.family]
        record_target = {"name": "gm-family", "family": described}
    else:
        target = GaussianMixture(dim=int(smallest), p=args.p, sigma2=args.sigma2)
        described = [{"p": args.p, "sigma2": args.sigma2}]
        record_target = {"name": "gm", "p": args.p, "sigma2": args.sigma2}
    jax.config.update("jax_enable_x64", True)  # after the checks: a bad argument changes nothing
    solver = make_solver(args.solver)
    start = TwoPhase.init(
        args.noise, smallest, kappa=args.kappa, num_coefficients=args.coefficients, split=args.split
    )
    objective = gm_objective(
        target, args.dims, solver=solver, steps=args.steps, reduce=args.reduce, dim_ratios=args.dim_ratios
    )
    result = optimize(
        objective,
        start,
        optimizer=args.optimizer,
        learning_rate=args.learning_rate,
        num_steps=args.iterations,
        patience=args.patience,
        progress=not args.no_progress,
    )
    per_step, once = evaluations_per_step(solver)
    nfe = per_step * args.steps + once
    errors = gm_table(target, result.schedule, args.dims, solver=solver, steps=args.steps)
    p_errors, s2_errors = np.asarray(errors.p_error), np.asarray(errors.sigma2_error)
    if args.family is None:
        p_errors, s2_errors = p_errors[None], s2_errors[None]
    table = [
        {
            **({} if args.family is None else member),
            "d": d,
            "p_error": float(e_p),
            "sigma2_error": float(e_s),
            "pass": bool(abs(e_p) <= 0.01 and abs(e_s) <= 0.02),
        }
        for member, row_p, row_s in zip(described, p_errors, s2_errors)
        for d, e_p, e_s in zip(args.dims, row_p, row_s)
    ]
    record = save_schedule(
        args.out,
        result.schedule,
        solver=args.solver,
        steps=args.steps,
        nfe=nfe,
        dims=args.dims,
        target=record_target,
        objective={
            "name": "gm-tolerance",
            "reduce": args.reduce,
            **({} if args.dim_ratios is None else {"dim_ratios": args.dim_ratios}),
            "p_tol": 0.01,
            "sigma2_tol": 0.02,
            "start": result.history[0],
            "best": result.best_loss,
        },
        optimizer={
            "name": args.optimizer,
            "learning_rate": args.learning_rate,
            "iterations": result.num_steps,
            "stopped_early": result.stopped_early,
            "wall_seconds": round(result.wall_seconds, 2),
        },
        errors=table,
        history=[round(v, 6) for v in result.history],
    )
    return {
        "schedule_file": args.out,
        **{
            k: record[k]
            for k in (
                "noise",
                "kappa",
                "split",
                "first",
                "second",
                "solver",
                "steps",
                "nfe",
                "dims",
                "target",
                "objective",
                "optimizer",
                "errors",
            )
        },
    }

