"""Transfer of learned schedules to other targets (issue 11, "Done means"): NFE to tolerance.

A schedule learned on the GM reduction only (``benchmarks/results/learned/vp_heun6.json``) is
applied to another target and compared with (ii) a schedule of the same family trained on that
target and (iii) the paper's dilated VP (kappa = 3), same solver (Heun), same noise:

- **K-mode mixture** (:class:`nsjax.targets.KModeMixture`, its defaults: weights (0.5, 0.3, 0.2),
  variances (0.25, 0.5, 1), amplitudes 1; full particles). Training: :class:`TwoPhase` VP (4 + 4
  Legendre coefficients, start: the paper's dilation), Heun, 6 steps (12 NFE), Adam
  (:func:`nsjax.optimize.optimize`) on a surrogate with fixed noise at ``--train-dims``
  (``--train-particles`` particles per d): the smooth features of :mod:`nsjax.objectives`
  (:func:`soft_features`: sigmoids of the nearest-mean margins, soft per-mode
  ``|x - m_k|^2/d``) matched to those of a fine-step reference flow
  (Heun, 256 steps) from the same noise, in units of the tolerance, plus
  :func:`nsjax.objectives.path_distance` to that reference in units of ``S2_TOL`` times the mean
  variance. Evaluation: full particles at ``--eval-dim`` with ``--particles`` (common random
  numbers across schedules), Heun, ``N`` on :data:`LADDER`; the tolerance of ``nsjax reproduce``
  for every mode: ``|p_k_hat - p_k| <= 0.01`` and ``|sigma2_k_hat / sigma2_k - 1| <= 0.02``
  (exact finite-d references, :meth:`KModeMixture.reference`), point estimates, with the
  standard errors recorded (``--particles`` is chosen so that every p stderr is below 0.01/3).
- **Curie–Weiss** (theta = 2, ``h = (1/2) ln 4`` of ``nsjax reproduce``): the reduced flow
  (:func:`make_target` ``"cw"``: :class:`~nsjax.cw_reduction.QuantileReducedCW`, :data:`CW_NODES`
  graded nodes) at ``--quantiles`` stratified ``u`` quantiles, float64, at every ``d`` of
  ``--cw-dims`` (1e3, 1e6, 1e9): a schedule passes at ``N`` when at every ``d``
  ``|p_hat - p| <= 0.01``, ``|spread_hat / spread - 1| <= 0.02`` and ``|E|M|_hat / E|M| - 1| <= 0.02``
  against :func:`~nsjax.cw_reduction.cw_reference` (the criterion of
  :mod:`nsjax.experiments.cw_reduced`; ``p_hat`` is exact to ``1/(2 quantiles)``); the first
  passing NFE per ``d`` is recorded too. Training (:func:`train_cw`): same family and start, Adam on
  :func:`nsjax.cw_objectives.cw_objective` over the same ``d`` grid: ``p_hat = Phi(-u*)`` at the exact
  separatrix of the reduced flow (the final ``M`` is increasing in ``u``; ``u*`` by bracketing, its
  derivative by the implicit function theorem) and the quantile means of the spread and ``E|M|``
  (:data:`CW_TRAIN_QUANTILES`), in units of the tolerance.
- Every schedule file of :data:`EXTRA_FILES` that exists (``gm-family-learned``: trained on several
  GMs at once) is evaluated too.

Results merge into ``--out``: the entries of targets not run are kept.

    python benchmarks/transfer.py --targets cw                 # train on CW, then evaluate
    python benchmarks/transfer.py --targets cw --no-train      # committed files only
    python benchmarks/transfer.py --targets kmode --out benchmarks/results/transfer.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

import jax

jax.config.update("jax_enable_x64", True)

import diffrax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from nsjax.cw_objectives import cw_objective  # noqa: E402
from nsjax.cw_reduction import QuantileReducedCW, ReducedCW, cw_reference  # noqa: E402
from nsjax.ensemble import sample  # noqa: E402
from nsjax.experiments.config import P_TOL, S2_TOL, Config  # noqa: E402
from nsjax.experiments.cw_reduced import _features as cw_quantile_features  # noqa: E402
from nsjax.experiments.cw_reduced import _passes as cw_passes  # noqa: E402
from nsjax.experiments.learned import KModeFeatures  # noqa: E402
from nsjax.features import estimate  # noqa: E402
from nsjax.interpolants import make_interpolant  # noqa: E402
from nsjax.objectives import path_distance, smooth_features  # noqa: E402
from nsjax.optimize import at_dim, optimize  # noqa: E402
from nsjax.registry import noise_scale  # noqa: E402
from nsjax.schedule_files import git_revision, load_schedule, save_schedule  # noqa: E402
from nsjax.schedules import TwoPhase  # noqa: E402
from nsjax.solve import solve  # noqa: E402
from nsjax.solvers import evaluations_per_step, make_solver  # noqa: E402
from nsjax.sweeps import normal_quantiles  # noqa: E402
from nsjax.targets import CurieWeiss, KModeMixture  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
LEARNED = os.path.join(HERE, "results", "learned")
GM_FILE = os.path.join(LEARNED, "vp_heun6.json")
KMODE_FILE = os.path.join(LEARNED, "kmode_vp_heun6.json")
CW_FILE = os.path.join(LEARNED, "cw_vp_heun6.json")
GMFAM_FILE = os.path.join(LEARNED, "gmfam_vp_heun6.json")
GMFAM_DR_FILE = os.path.join(LEARNED, "gmfam_dr_vp_heun6.json")
EXTRA_FILES = {"gm-family-learned": GMFAM_FILE, "gm-family-dr-learned": GMFAM_DR_FILE}
"""Further learned files evaluated when present (name -> path)."""
TARGET_FILES = {"kmode": KMODE_FILE, "cw": CW_FILE}
"""The schedule trained on each target ("target-learned")."""
CW_THETA, CW_H = 2.0, Config.h
"""Curie-Weiss of the transfer: theta = 2 and the field of ``nsjax reproduce`` ((1/2) ln 4)."""
CW_DIMS = (1e3, 1e6, 1e9)
CW_NODES = 128
"""Graded rule nodes of the reduced CW flow (the spread's rule error: 0.005 at d = 1e3, 8e-4 at
1e9, Heun N = 128, against 0.014 with 64 nodes; measured)."""
CW_QUANTILES = 256
"""Stratified ``u`` quantiles of the CW evaluation: ``p_hat`` to ``1/(2 * 256) = 0.002 < P_TOL``."""
CW_TRAIN_QUANTILES = 32
LADDER = (2, 3, 4, 5, 6, 8, 10, 12, 16, 20, 24, 32, 48, 64)
KAPPA = 3.0


# -- targets -----------------------------------------------------------------------------------------
def make_target(name: str, dim: float):
    """The transfer target called ``name`` at dimension ``dim``: ``"kmode"`` (the K-mode mixture
    of this benchmark, full particles) or ``"cw"`` (Curie–Weiss theta = 2, ``h = (1/2) ln 4``: the
    reduced flow :class:`~nsjax.cw_reduction.QuantileReducedCW` with :data:`CW_NODES` graded nodes,
    started at stratified ``u`` quantiles, as :mod:`nsjax.experiments.cw_reduced`)."""
    if name == "kmode":
        return KModeMixture(dim=int(dim))
    if name == "cw":
        return QuantileReducedCW(CurieWeiss(2, CW_THETA, CW_H), nodes=CW_NODES, dim=float(dim))
    raise ValueError(f"target must be 'kmode' or 'cw', got {name!r}")


def schedules(dim: float, target_file: str | None = KMODE_FILE, extra_files: dict | None = None) -> dict:
    """``{name: (interpolant, schedule)}`` of the compared schedules at ``dim``: ``gm-learned``,
    ``vp-dilated`` (kappa 3), ``target-learned`` (``target_file``) and every file of
    ``extra_files`` (default :data:`EXTRA_FILES`: ``gm-family-learned``) that exists."""
    extra_files = EXTRA_FILES if extra_files is None else extra_files
    out = {
        "gm-learned": load_schedule(GM_FILE, dim, dtype=jnp.float64),
        "vp-dilated": TwoPhase.init("vp", dim, kappa=KAPPA, num_coefficients=4, dtype=jnp.float64),
    }
    if target_file and os.path.exists(target_file):
        out["target-learned"] = load_schedule(target_file, dim, dtype=jnp.float64)
    for name, path in extra_files.items():
        if path and os.path.exists(path):
            out[name] = load_schedule(path, dim, dtype=jnp.float64)
    return {k: (make_interpolant("linear", noise_scale(v.noise, dim)), v) for k, v in out.items()}


# -- evaluation ------------------------------------------------------------------------------------
def features_of(target, stats) -> dict:
    """Features of final statistics ``stats`` and ``error`` = max over features of ``|error| / tol``.

    K-mode (any target of :func:`nsjax.estimate`): ``estimate`` plus ``p_stderr_max`` (the max
    standard error of the p features). Reduced CW: the quantile features of
    :mod:`nsjax.experiments.cw_reduced` against :meth:`ReducedCW.reference` (its concrete ``d``),
    ``pass`` as that study, and ``p_quantization = 1/(2 n)`` for ``n`` quantiles."""
    if isinstance(target, ReducedCW):
        return _cw_features(stats, target.reference())
    f = estimate(target, stats, allow_empty=True)
    names = [k[: -len("_error")] for k in f if k.endswith("_error")]
    ratios = [abs(f[f"{n}_error"]) / (P_TOL if n.startswith("p") else S2_TOL) for n in names]
    f["error"] = float(max(ratios)) if all(np.isfinite(ratios)) else float("inf")
    f["p_stderr_max"] = float(max(f[f"{n}_stderr"] for n in names if n.startswith("p")))
    return f


def _cw_features(stats, ref) -> dict:
    f = cw_quantile_features(stats, ref)
    ratios = [f["p_error"] / P_TOL, abs(f["spread_ratio"] - 1) / S2_TOL, abs(f["m_abs_ratio"] - 1) / S2_TOL]
    f["error"] = float(max(ratios)) if all(np.isfinite(ratios)) else float("inf")
    f["pass"] = bool(cw_passes(f))
    mag = np.asarray(stats["magnetization"])
    f["p_quantization"] = 0.5 / mag.shape[-1]
    f["monotone"] = bool(np.all(np.diff(mag) >= 0))  # M_1(u) increasing over the sorted quantiles
    return f


_CW_PROGRAMS: dict = {}


def _cw_program(system: ReducedCW, steps: int, solver: str, quantiles: int):
    """Compiled ``(schedule, dims) -> statistics[d, u]`` of the reduced CW flow (one per ``steps``)."""
    key = (system.target.theta, system.target.h, system.nodes, system.rule, steps, solver, quantiles)
    if key not in _CW_PROGRAMS:
        z = jnp.asarray(normal_quantiles(quantiles), jnp.float64)
        solver_ = make_solver(solver)
        target = system.target

        @jax.jit
        def run(schedule, dims):
            def at(d):
                reduced = QuantileReducedCW(target, nodes=system.nodes, dim=d, rule=system.rule)
                interpolant = make_interpolant("linear", noise_scale(schedule.noise, d))
                sch = at_dim(schedule, d)
                one = lambda u: reduced.statistics(  # noqa: E731
                    solve(
                        reduced, interpolant, sch, key=u, steps=steps, solver=solver_, dtype=jnp.float64
                    ).state
                )
                return jax.vmap(one)(z)

            return jax.vmap(at)(dims)

        _CW_PROGRAMS[key] = run
    return _CW_PROGRAMS[key]


def cw_statistics(
    system: ReducedCW, schedule, dims, *, steps: int, solver: str = "heun", quantiles: int = CW_QUANTILES
):
    """Final statistics (``magnetization``, ``spread``, ``spin_error``; shape ``[len(dims), quantiles]``)
    of the reduced CW flow of ``system`` (its ``theta``, ``h``, nodes; ``d`` from ``dims``) under
    ``schedule`` re-dimensioned to each ``d`` (:func:`nsjax.optimize.at_dim`), float64."""
    run = _cw_program(system, int(steps), solver, int(quantiles))
    stats = run(schedule, jnp.asarray([float(d) for d in dims], jnp.float64))
    return {k: np.asarray(v) for k, v in stats.items()}


def cw_first_pass(rows) -> dict:
    """``{d: NFE of the first ladder row passing at that d}`` of CW rows (``None``: not reached)."""
    keys = list(rows[0]["per_d"]) if rows else []
    return {k: next((r["nfe"] for r in rows if r["per_d"][k]["pass"]), None) for k in keys}


def _cw_nfe_to_tolerance(target, schedule, *, quantiles, ladder, solver, dims):
    rows = []
    per_step, once = evaluations_per_step(make_solver(solver))
    refs = {d: cw_reference(float(target.target.theta), float(target.target.h), d) for d in dims}
    for n in ladder:
        stats = cw_statistics(target, schedule, dims, steps=n, solver=solver, quantiles=quantiles)
        per_d = {
            f"{d:.0e}": _cw_features({k: v[i] for k, v in stats.items()}, refs[d]) for i, d in enumerate(dims)
        }
        nfe = float(per_step * n + once)
        row = {"N": n, "nfe": nfe, "pass": all(f["pass"] for f in per_d.values()),
               "error": max(f["error"] for f in per_d.values()), "per_d": per_d}
        rows.append(row)
        print(f"    N={n:3d} nfe={nfe:.0f} error/tol={row['error']:.3g} "
              + " ".join(f"{k}:{f['error']:.3g}" for k, f in per_d.items()), flush=True)
        if row["pass"]:
            return rows, nfe
    return rows, None


def nfe_to_tolerance(
    target, interpolant, schedule, *, particles, seed=0, ladder=LADDER, solver="heun", observable=None,
    dims=None,
):
    """Rows ``{N, nfe, error, pass, ...}`` up to the first ``N`` of ``ladder`` that meets the
    tolerance (all features), and that ``N``'s NFE (``None``: not reached).

    Reduced CW (``target`` a :class:`ReducedCW`): ``particles`` stratified ``u`` quantiles, the
    schedule re-dimensioned to every ``d`` of ``dims`` (default :data:`CW_DIMS`; ``interpolant``
    unused: the noise scale of the schedule's noise at each ``d``); ``pass`` at ``N`` means every
    ``d`` passes; rows hold ``per_d`` features (:func:`cw_first_pass`: the NFE per ``d``)."""
    if isinstance(target, ReducedCW):
        return _cw_nfe_to_tolerance(target, schedule, quantiles=particles, ladder=ladder, solver=solver,
                                    dims=tuple(CW_DIMS if dims is None else dims))
    rows = []
    if observable is None:  # the features of target (the K-mode reference computed once)
        observable = KModeFeatures(target) if isinstance(target, KModeMixture) else target
    for n in ladder:
        result = sample(
            target,
            interpolant,
            schedule,
            jax.random.PRNGKey(seed),
            particles,
            steps=n,
            solver=make_solver(solver),
            dtype=jnp.float32,
            memory_budget=2**30,
        )
        f = features_of(observable, result.statistics)
        row = {"N": n, "nfe": float(result.nfe.mean()), "pass": bool(f["error"] <= 1.0), **f}
        rows.append(row)
        print(f"    N={n:3d} nfe={row['nfe']:.0f} error/tol={f['error']:.3g}", flush=True)
        if row["pass"]:
            return rows, row["nfe"]
    return rows, None


# -- training on full particles --------------------------------------------------------------------
def soft_features(target: KModeMixture, x, width: float = 0.02):
    """Smooth per-mode weights and variances of final particles ``x`` (``[P, d]``).

    ``p_k = smooth_features(M_k, width)`` (:func:`nsjax.objectives.smooth_features`: the mean of
    ``sigmoid(M_k / width)``) with the margin ``M_k = (S_k - max_{l != k} S_l) / A^2`` of the
    nearest-mean rule (``S_k = m_k.x - |m_k|^2 / 2``, ``A^2`` the mean ``|m_k|^2``), and
    ``sigma2_k = sum_i sigmoid(M_ik / width) |x_i - m_k|^2 / d / sum_i sigmoid(M_ik / width)``."""
    A = target.norms
    u = jax.vmap(target.project)(x)  # [P, K]
    S = (A * u - A**2 / 2) / jnp.mean(A**2)
    K = S.shape[1]
    others = jnp.where(jnp.eye(K, dtype=bool)[None], -jnp.inf, S[:, None, :])  # [P, k, l]
    margin = S - jnp.max(others, axis=-1)  # [P, K]
    p = jnp.stack([smooth_features(margin[:, k], width) for k in range(K)])
    soft = jax.nn.sigmoid(margin / width)
    sq = (jnp.sum(x**2, axis=1)[:, None] - 2 * A * u + A**2) / target.dim  # |x - m_k|^2 / d
    s2 = jnp.sum(soft * sq, axis=0) / jnp.sum(soft, axis=0)
    return p, s2


def surrogate(target: KModeMixture, x, ref):
    """The training loss: matched smooth features (units of the tolerance) + path distance."""
    p, s2 = soft_features(target, x)
    p_ref, s2_ref = soft_features(target, ref)
    feature = jnp.sum(((p - p_ref) / P_TOL) ** 2) + jnp.sum(((s2 / s2_ref - 1) / S2_TOL) ** 2)
    scale = S2_TOL * jnp.mean(target.variances)
    return feature + path_distance(x, ref) / scale


def train_kmode(dims, particles, *, steps=6, iterations=150, patience=60, seed=1, progress=True):
    """Adam on :func:`surrogate` summed over ``dims``; returns (OptimizeResult, info)."""
    solver = make_solver("heun")
    adjoint = diffrax.ForwardMode()
    start = TwoPhase.init("vp", min(dims), kappa=KAPPA, num_coefficients=4, dtype=jnp.float64)
    data = []
    for i, d in enumerate(dims):
        target = make_target("kmode", int(d))
        interpolant = make_interpolant("linear", 1.0)
        keys = jax.random.split(jax.random.PRNGKey(seed + i), particles)
        fine = TwoPhase.init("vp", d, kappa=KAPPA, num_coefficients=4, dtype=jnp.float64)
        ref = jax.jit(
            jax.vmap(
                lambda k, target=target, interpolant=interpolant, fine=fine: solve(
                    target, interpolant, fine, key=k, steps=256, solver=solver, dtype=jnp.float64
                ).state
            )
        )(keys)
        data.append((d, target, interpolant, keys, ref))

    def objective(schedule):
        total = 0.0
        for d, target, interpolant, keys, ref in data:
            sch = at_dim(schedule, float(d))
            x = jax.vmap(
                lambda k: solve(
                    target, interpolant, sch, key=k, steps=steps, solver=solver, dtype=jnp.float64,
                    adjoint=adjoint,
                ).state
            )(keys)
            total = total + surrogate(target, x, ref)
        return total

    result = optimize(objective, start, num_steps=iterations, patience=patience, progress=progress)
    return result


def train_cw(dims=CW_DIMS, *, quantiles=CW_TRAIN_QUANTILES, nodes=CW_NODES, steps=6, iterations=100,
             patience=40, progress=True):
    """Adam (:func:`nsjax.optimize.optimize`) from the paper's dilation (kappa = 3) on
    :func:`nsjax.cw_objectives.cw_objective` summed over ``dims`` (Heun, ``steps`` steps): the exact
    separatrix ``p_hat = Phi(-u*)`` and the quantile means of the spread and ``E|M|``, against
    :func:`cw_reference`, in units of the tolerance. Returns the :class:`OptimizeResult`."""
    target = CurieWeiss(2, CW_THETA, CW_H)
    objective = cw_objective(target, dims, solver=make_solver("heun"), steps=steps, quantiles=quantiles,
                             nodes=nodes)
    start = TwoPhase.init("vp", min(dims), kappa=KAPPA, num_coefficients=4, dtype=jnp.float64)
    return optimize(objective, start, num_steps=iterations, patience=patience, progress=progress)


def train_and_save_cw(dims=CW_DIMS, iterations=100, path=CW_FILE, **kwargs) -> dict:
    """:func:`train_cw`, saved with :func:`save_schedule` at ``path``; returns the training record."""
    t0 = time.perf_counter()
    result = train_cw(dims, iterations=iterations, **kwargs)
    seconds = time.perf_counter() - t0
    quantiles = kwargs.get("quantiles", CW_TRAIN_QUANTILES)
    nodes = kwargs.get("nodes", CW_NODES)
    record = _save_trained(
        path, result, seconds, dims, "cw",
        target={"name": "cw", "theta": CW_THETA, "h": CW_H},
        objective={"name": "cw-tolerance (reduced flow: exact separatrix p, quantile spread and E|M|)",
                   "quantiles": quantiles, "nodes": nodes, "reduce": "sum", "p_tol": P_TOL, "s_tol": S2_TOL},
    )
    return {**record, "quantiles": quantiles, "nodes": nodes}


def _save_trained(path, result, seconds, dims, label, *, target, objective) -> dict:
    """Save a 6-step Heun schedule trained by Adam (:func:`optimize`) at ``path`` with its target,
    objective, optimiser and history; print and return the training record."""
    save_schedule(
        path,
        result.schedule,
        solver="heun",
        steps=6,
        nfe=12,
        dims=list(dims),
        target=target,
        objective={**objective, "start": result.history[0], "best": result.best_loss},
        optimizer={"name": "adam", "learning_rate": 0.05, "iterations": result.num_steps,
                   "stopped_early": result.stopped_early, "wall_seconds": round(seconds, 2),
                   "optimize_wall_seconds": round(result.wall_seconds, 2)},
        history=[round(v, 6) for v in result.history],
    )
    print(f"{label} trained in {seconds:.0f} s: loss {result.history[0]:.4g} -> {result.best_loss:.4g}")
    return {"dims": list(dims), "seconds": seconds, "start_loss": result.history[0],
            "best_loss": result.best_loss, "iterations": result.num_steps}


def _kmode_training(args) -> dict:
    dims = [float(d) for d in args.train_dims.split(",")]
    t0 = time.perf_counter()
    result = train_kmode(dims, args.train_particles, iterations=args.iterations)
    seconds = time.perf_counter() - t0
    record = _save_trained(
        KMODE_FILE, result, seconds, dims, "kmode",
        target={"name": "kmode", "weights": [0.5, 0.3, 0.2], "variances": [0.25, 0.5, 1.0],
                "amplitudes": [1.0, 1.0, 1.0]},
        objective={"name": "kmode-surrogate (smooth features + path distance, fixed noise)",
                   "particles": args.train_particles},
    )
    return {**record, "particles": args.train_particles}


def _file_training(path) -> dict | None:
    if not os.path.exists(path):
        return None
    with open(path) as handle:
        record = json.load(handle)
    return {k: record.get(k) for k in ("dims", "objective", "optimizer", "git_revision")}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train-dims", default="1000,10000", help="comma-separated K-mode training d")
    parser.add_argument("--train-particles", type=int, default=256)
    parser.add_argument("--iterations", type=int, default=150, help="K-mode Adam steps")
    parser.add_argument("--cw-iterations", type=int, default=100, help="CW Adam steps")
    parser.add_argument("--no-train", action="store_true", help="use the committed target-learned files")
    parser.add_argument("--eval-dim", type=int, default=1000, help="K-mode evaluation d")
    parser.add_argument("--particles", type=int, default=25_000, help="K-mode evaluation particles")
    parser.add_argument("--cw-dims", default="1e3,1e6,1e9", help="CW evaluation d grid (pass at every d)")
    parser.add_argument("--quantiles", type=int, default=CW_QUANTILES, help="CW stratified u quantiles")
    parser.add_argument("--targets", default="kmode,cw", help="comma-separated: kmode, cw")
    parser.add_argument("--out", default=os.path.join(HERE, "results", "transfer.json"),
                        help="results JSON; entries of targets not run are kept (merged)")
    args = parser.parse_args(argv)
    names = [n for n in args.targets.split(",") if n]
    for name in names:
        if name not in TARGET_FILES:
            raise SystemExit(f"--targets: each must be one of {sorted(TARGET_FILES)}, got {name!r}")
    start = time.perf_counter()
    run = {
        "command": " ".join([os.path.basename(sys.executable), *sys.argv]),
        "machine": f"{platform.machine()} {os.cpu_count()} cpus, jax {jax.__version__}",
        "revision": git_revision(),
    }
    out = {}
    if os.path.exists(args.out):  # merge: keep the entries of targets not run now
        with open(args.out) as handle:
            out = json.load(handle)
        for entry in out.get("targets", {}).values():
            for key in run:
                entry.setdefault(key, out.get(key))
    out.update(run)
    out.update({"tolerance": {"p": P_TOL, "sigma2_relative": S2_TOL}, "solver": "heun",
                "ladder": list(LADDER), "gm_file": os.path.relpath(GM_FILE, os.path.dirname(HERE))})
    out.setdefault("targets", {})
    for name in names:
        t0 = time.perf_counter()
        target_file = TARGET_FILES[name]
        if args.no_train:
            training = _file_training(target_file)
        elif name == "kmode":
            training = _kmode_training(args)
        else:
            training = train_and_save_cw(CW_DIMS, iterations=args.cw_iterations, progress=False)
        if name == "kmode":  # the top-level fields of the committed K-mode entry
            out["kmode_file"] = os.path.relpath(KMODE_FILE, os.path.dirname(HERE))
            out["training"] = training
        if name == "cw":
            dims = [float(d) for d in args.cw_dims.split(",")]
            target = make_target("cw", min(dims))
            entry = {"dims": dims, "quantiles": args.quantiles, "nodes": CW_NODES, "theta": CW_THETA,
                     "h": CW_H,
                     "criterion": "|p_hat - p| <= P_TOL, spread and E|M| within S2_TOL (relative), every d",
                     "references": {f"{d:.0e}": cw_reference(CW_THETA, CW_H, d) for d in dims},
                     "p_quantization": 0.5 / args.quantiles}
            particles, kwargs, observable = args.quantiles, {"dims": dims}, None
        else:
            target = make_target(name, args.eval_dim)
            observable = KModeFeatures(target)
            entry = {"d": args.eval_dim, "particles": args.particles, "reference": observable.reference}
            particles, kwargs = args.particles, {}
        entry.update({**run, "target_file": os.path.relpath(target_file, os.path.dirname(HERE)),
                      "training": training, "nfe_to_tolerance": {}, "rows": {}, "seconds": {}})
        for sname, (interpolant, schedule) in schedules(args.eval_dim, target_file).items():
            print(f"{name} {sname}", flush=True)
            t1 = time.perf_counter()
            rows, nfe = nfe_to_tolerance(
                target, interpolant, schedule, particles=particles, observable=observable, **kwargs
            )
            entry["nfe_to_tolerance"][sname] = nfe
            entry["rows"][sname] = rows
            if name == "cw":
                entry.setdefault("nfe_to_tolerance_per_d", {})[sname] = cw_first_pass(rows)
            entry["seconds"][sname] = time.perf_counter() - t1
        nfes = entry["nfe_to_tolerance"]
        gm, own = nfes.get("gm-learned"), nfes.get("target-learned")
        entry["ratio_gm_to_target_learned"] = gm / own if gm and own else None
        entry["within_1_5x"] = bool(gm and own and gm <= 1.5 * own)
        for extra in EXTRA_FILES:  # e.g. "gm-family-learned" -> "ratio_gm_family_to_target_learned"
            if nfes.get(extra) and own:
                label = extra[: -len("-learned")].replace("-", "_")
                entry[f"ratio_{label}_to_target_learned"] = nfes[extra] / own
        entry["wall_seconds"] = time.perf_counter() - t0
        out["targets"][name] = entry
    out["wall_seconds"] = time.perf_counter() - start
    with open(args.out, "w") as handle:
        json.dump(out, handle, indent=1, default=float)
    print(json.dumps({k: v["nfe_to_tolerance"] for k, v in out["targets"].items()}, indent=1))
    print(f"wall {out['wall_seconds']:.0f} s -> {args.out}")


if __name__ == "__main__":
    main()
