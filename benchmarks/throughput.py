"""Engine throughput against the memory-bandwidth roofline and against PyTorch baselines.

Figures (all measured in this one run, on one device, float32):

- **Bandwidth**: STREAM-style kernels in JAX on arrays far larger than the last-level cache,
  in place inside one compiled loop: ``triad a <- a + s b`` (12 bytes per element moved) and
  ``scale a <- s a`` (8 bytes), best of several runs.
- **Engine**: :func:`nsjax.sample` (ve-dilated schedule) for GM and CW (exact and two-saddle
  posteriors), solvers Euler/Heun/Midpoint/RK4 (fused, :mod:`nsjax.solvers`) and diffrax's generic
  Heun/RK4, over ``d`` and particle counts. The *per-evaluation cost* is the marginal one: the
  wall-time difference between ``n2`` and ``n1`` steps divided by the velocity evaluations
  added, so noise generation, compilation and statistics drop out; it is reported as coordinate
  updates per second ``d x particles x NFE / time``. End-to-end wall times are reported too.
- **Roofline** (bytes-per-coordinate model, stated, float32): one Euler step on GM must read every
  coordinate once for ``r.x`` and read and write it once for the update: **12 bytes per coordinate
  per evaluation**. ``fraction = 12 d B / (time per step) / triad bandwidth``. A fused ``s``-stage
  Runge–Kutta step recomputes each stage state inside its reduction (``r.x`` is a
  :func:`~nsjax.targets._sums.coordinate_sum`, which XLA fuses with what produces ``x``): ``s``
  reads and one read-and-write, ``4 (s + 2) / s`` bytes per evaluation (Heun 8, RK4 6). XLA's own
  count of the bytes one compiled step accesses (``cost_analysis``, ``d = 2^16``) is printed
  beside the model. A row whose bytes over its time exceed twice the triad bandwidth cannot be
  a memory-bound measurement (data left in cache, or a failed marginal estimate): it is marked
  ``suspect`` and kept out of the summary. The bytes are the GM model, and for other targets
  the lower bound of one read per coordinate-evaluation (4 bytes).
- **Baselines** (GM, Euler, same ``d``, particles and step grid, same marginal measurement):
  (a) PyTorch eager as a researcher writes it: a ``(d, B)`` array, ``torch.outer`` for the mode
  term, fresh arrays every step, a Python step loop; (b) careful PyTorch: ``(B, d)``, one
  reduction and broadcast in-place updates; (c) ``torch.compile`` of (b)'s step. Each baseline's
  step is checked against the engine's velocity at small ``d`` before timing.
- **Pairing**: figures that enter a ratio are timed together, their short and long runs in turn
  (all solvers at the roofline point; GM and CW at the CW point; each baseline with a fresh
  engine Euler measurement), so that the machine's load drifts hit both sides of a ratio.

Run::

    python benchmarks/throughput.py --quick --json out/throughput_quick.json   # < 4 min on 2 CPUs
    python benchmarks/throughput.py --json out/throughput.json                 # the full grid
    python benchmarks/throughput.py --gpu --json out/throughput_gpu.json       # CUDA (~4 min, H100)
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import shlex
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")  # leave GPU memory to PyTorch

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from nsjax import sample, step_grid  # noqa: E402
from nsjax.diagnostics import step_bytes_per_coordinate  # noqa: E402
from nsjax.registry import preset  # noqa: E402
from nsjax.solvers import evaluations_per_step, make_solver  # noqa: E402
from nsjax.targets import CurieWeiss, GaussianMixture  # noqa: E402

BYTES_PER_COORD_EULER = 12  # read x for r.x, read x and write x for the update (float32)
SCHEDULE = "ve-dilated"
SUSPECT_BANDWIDTH = 2.0  # model bytes / time above this multiple of the triad: not memory-bound
MIN_BYTES_PER_COORD_EVAL = 4  # every velocity evaluation reads each coordinate once (float32)


def gm_bytes_model(solver: str) -> float | None:
    """Bytes per coordinate per GM evaluation (float32): Euler 12, a fused ``s``-stage RK
    ``4 (s + 2) / s``; ``None`` for diffrax's generic solvers (stored stages, no model)."""
    if solver == "euler":
        return float(BYTES_PER_COORD_EULER)
    if solver.startswith("diffrax"):
        return None
    stages = evaluations_per_step(make_solver(solver))[0]
    return 4 * (stages + 2) / stages


def xla_bytes_per_coord_eval(target: str, solver: str, d: int = 2**16) -> float:
    """XLA's count of the bytes one compiled step accesses, per coordinate per evaluation
    (:func:`nsjax.diagnostics.step_bytes_per_coordinate`, 8 particles)."""
    interpolant, schedule = preset(SCHEDULE, d)
    solver_ = make_solver(solver)
    per_step = step_bytes_per_coordinate(TARGETS[target](d), interpolant, schedule, solver_)
    return per_step / evaluations_per_step(solver_)[0]


# -- machine -------------------------------------------------------------------------------------
def machine() -> dict:
    """Device, host and load figures printed with every result."""
    dev = jax.devices()[0]
    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "command": "python " + shlex.join(sys.argv),
        "backend": jax.default_backend(),
        "device": dev.device_kind,
        "num_devices": jax.device_count(),
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "load_average_at_start": os.getloadavg(),
        "jax": jax.__version__,
    }


def _best(fn, reps: int, warmup: bool = True) -> float:
    if warmup:
        fn()
    best = math.inf
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


# -- bandwidth -----------------------------------------------------------------------------------
def bandwidth(num_elements: int, loops: int = 10, reps: int = 5) -> dict:
    """STREAM-style triad and scale in JAX, in place inside one compiled loop (GB/s)."""
    a = jnp.ones((num_elements,), jnp.float32)
    b = jnp.full((num_elements,), 0.5, jnp.float32)

    @jax.jit
    def triad(a, b):
        return jax.lax.fori_loop(0, loops, lambda i, a: a + (1e-3 * i).astype(a.dtype) * b, a)

    @jax.jit
    def scale(a):
        return jax.lax.fori_loop(0, loops, lambda i, a: a * jnp.float32(1.0001), a)

    t_triad = _best(lambda: jax.block_until_ready(triad(a, b)), reps)
    t_scale = _best(lambda: jax.block_until_ready(scale(a)), reps)
    size = 4 * num_elements * loops
    return {
        "array_bytes": 4 * num_elements,
        "triad_GBps": 3 * size / t_triad / 1e9,
        "scale_GBps": 2 * size / t_scale / 1e9,
    }


# -- engine --------------------------------------------------------------------------------------
@dataclass
class Point:
    """One engine measurement."""

    target: str
    solver: str
    d: int
    particles: int
    steps: tuple[int, int]
    seconds_per_coord_eval: float
    coord_updates_per_s: float
    end_to_end_s: float
    nfe: int
    chunk_size: int
    model_bytes: float | None = None
    """GM bytes per coordinate-evaluation in the stated model (:func:`gm_bytes_model`)."""
    effective_GBps: float | None = None
    suspect: bool = False
    """Model bytes over time above ``SUSPECT_BANDWIDTH`` x triad: not a memory-bound figure."""
    group: int = 0
    """Points of one group were timed together (:func:`engine_points`)."""


TARGETS = {
    "gm": lambda d: GaussianMixture(dim=d),
    "cw-exact": lambda d: CurieWeiss(dim=d, theta=2.0, h=0.5, posterior="exact"),
    "cw-two-saddle": lambda d: CurieWeiss(dim=d, theta=2.0, h=0.5, posterior="two-saddle"),
}


EST_SECONDS_PER_COORD_EVAL = {"gm": 0.5e-9, "cw-two-saddle": 0.7e-9, "cw-exact": 1.2e-9}
EST_FIXED_SECONDS_PER_COORD = 12e-9  # noise generation (threefry on CPU) and statistics


def marginal_steps(target: str, solver: str, d: int, particles: int, first: int,
                   seconds: float = 0.3) -> tuple[int, int]:
    """``(first, first + extra)``: ``extra`` steps worth ``seconds`` of work, and at least twice
    the fixed cost of a run (whose run-to-run noise would otherwise dominate); 4..2000 steps."""
    per_step, _ = evaluations_per_step(make_solver(solver))
    seconds = max(seconds, 2 * EST_FIXED_SECONDS_PER_COORD * d * particles)
    cost = EST_SECONDS_PER_COORD_EVAL[target] * (8 if solver.startswith("diffrax") else 1)
    extra = math.ceil(seconds / (cost * d * particles * per_step))
    return first, first + min(max(extra, 4), 2000)


def marginal_cost(diffs: list[float], added_coord_evals: float, label: str) -> float:
    """Median wall-time difference per added coordinate-evaluation; NaN (reported) when the long
    runs were not slower than the short ones, i.e. timing noise exceeded the added work."""
    median = float(np.median(diffs))
    if median <= 0:
        print(f"  {label}: marginal estimate failed (long run not slower than short: {diffs})")
        return math.nan
    return median / added_coord_evals


def engine_plan(target: str, solver: str, d: int, particles: int, seconds: float):
    """``(run, steps, nfe, last)`` for a marginal measurement: ``run(n)`` solves ``n`` steps,
    ``steps`` are the short and long step counts (both compiled here), ``nfe`` their evaluations
    per particle, ``last`` the long run's result."""
    interpolant, schedule = preset(SCHEDULE, d)
    system, key = TARGETS[target](d), jax.random.key(0)
    steps = marginal_steps(target, solver, d, particles, 2, seconds)

    def run(n):
        return sample(system, interpolant, schedule, key, particles, steps=n,
                      solver=make_solver(solver), on_nonfinite="ignore")

    first, last = run(steps[0]), run(steps[1])
    return run, steps, (int(first.nfe[0]), int(last.nfe[0])), last


def engine_points(runs: list[tuple[str, str]], d: int, particles: int, seconds: float,
                  reps: int) -> list[Point]:
    """Marginal cost per velocity evaluation of each ``(target, solver)`` at one ``(d, B)``.

    Every configuration is compiled first; then each repetition runs every configuration's short
    and long solve in turn, so that a drift of the machine's load hits all of them alike and the
    ratios between them (RK / Euler, CW / GM) are paired measurements.
    """
    plans = [engine_plan(target, solver, d, particles, seconds) for target, solver in runs]
    diffs = [[] for _ in plans]
    walls = [[] for _ in plans]
    for _ in range(reps):
        for i, (run, steps, _, _) in enumerate(plans):
            short, long = run(steps[0]), run(steps[1])
            diffs[i].append(long.wall_seconds - short.wall_seconds)
            walls[i].append(long.wall_seconds)
    points = []
    for (target, solver), (_, steps, nfe, last), diff, wall in zip(runs, plans, diffs, walls):
        per = marginal_cost(diff, (nfe[1] - nfe[0]) * d * particles, f"{target} {solver} d={d:.0e}")
        points.append(Point(target, solver, d, particles, tuple(steps), per, 1 / per, min(wall),
                            nfe[1], last.chunk_size))
    return points


# -- PyTorch baselines ---------------------------------------------------------------------------
def euler_plan(d: int, steps: int) -> list[tuple[float, float, float, float]]:
    """Per Euler step ``(h, tau, tau_c, rate)`` in float64: the engine's grid and schedule."""
    _, schedule = preset(SCHEDULE, d)
    plan = []
    for piece, grid in enumerate(step_grid(schedule, steps)):
        for t0, t1 in zip(grid[:-1], grid[1:]):
            value = schedule.evaluate(np.float64(t0), piece)
            plan.append((float(t1 - t0), float(value.tau), float(value.tau_c), float(value.rate)))
    return plan


def gm_coefficients(d: int, tau: float, tau_c: float, p: float = 0.8, sigma2: float = 0.25):
    """VE linear-interpolant GM velocity ``b = A x + (Bm) tanh(h + beta r.x / D) r`` (docs/theory.md §2)."""
    c2 = float(d)
    c2a2 = c2 * tau_c**2
    D = c2a2 + sigma2 * tau**2
    h = 0.5 * math.log(p / (1 - p))
    A = sigma2 * tau / D - c2 * tau_c / D  # eta_x + c^2 tau_c score_x
    Bm = c2a2 / D + c2 * tau_c * tau / D  # eta_r + c^2 tau_c score_r, per unit mode
    return A, Bm, h, tau / D


def torch_naive(torch, x, plan, d):
    """(a) A researcher's loop: ``x`` of shape ``(d, B)``, outer products, new arrays each step."""
    r = torch.ones(d, dtype=x.dtype, device=x.device)
    c2 = float(d)
    p, sigma2 = 0.8, 0.25
    h_field = 0.5 * math.log(p / (1 - p))
    for h, tau, tau_c, rate in plan:
        alpha, beta = tau_c, tau
        D = c2 * alpha**2 + sigma2 * beta**2
        rx = r @ x
        mode = torch.tanh(h_field + beta * rx / D)
        eta = (sigma2 * beta / D) * x + torch.outer(r, (c2 * alpha**2 / D) * mode)
        score = (-1 / D) * x + torch.outer(r, (beta / D) * mode)
        v = eta + c2 * tau_c * score  # b = beta' eta - c^2 alpha alpha' score
        x = x + h * rate * v
    return x


def careful_step(torch, x, scale, shift_coef, h_field, gain):
    """(b) one Euler step in place on ``x`` of shape ``(B, d)``: ``x <- scale x + shift tanh(.)``."""
    mode = torch.tanh(h_field + gain * x.sum(dim=1, keepdim=True))
    x.mul_(scale).add_(shift_coef * mode)
    return x


def careful_args(torch, plan, d, device):
    out = []
    for h, tau, tau_c, rate in plan:
        A, Bm, h_field, gain = gm_coefficients(d, tau, tau_c)
        vals = (1 + h * rate * A, h * rate * Bm, h_field, gain)
        out.append(tuple(torch.tensor(v, dtype=torch.float32, device=device) for v in vals))
    return out


def torch_check(torch, device: str) -> float:
    """Max relative difference of one baseline step (a) and (b) vs the engine's velocity (d=1000)."""
    d, B = 1000, 3
    interpolant, _ = preset(SCHEDULE, d)
    target = GaussianMixture(dim=d)
    x = np.random.default_rng(0).normal(size=(B, d)).astype(np.float32) * math.sqrt(d) * 0.3
    h, tau, tau_c, rate = 0.01, 0.6, 0.4, 1.7
    ref = x + h * rate * np.asarray(jax.vmap(
        lambda y: target.velocity(interpolant, jnp.float32(tau), jnp.float32(tau_c), y))(x))
    xt = torch.tensor(x, device=device)
    naive = torch_naive(torch, xt.T.contiguous(), [(h, tau, tau_c, rate)], d).T.cpu().numpy()
    (args,) = careful_args(torch, [(h, tau, tau_c, rate)], d, device)
    careful = careful_step(torch, xt.clone(), *args).cpu().numpy()
    scale = np.abs(ref).max()
    return float(max(np.abs(naive - ref).max(), np.abs(careful - ref).max()) / scale)


def torch_points(d: int, particles: int, naive_steps: tuple[int, int], seconds: float, reps: int,
                 device: str, variants: tuple[str, ...]) -> dict:
    """Marginal per-evaluation cost of the baselines (seconds per coordinate update), each paired
    with the engine's GM Euler at the same point.

    The naive loop runs ``naive_steps``; (b) and (c) run as many steps as ``seconds`` of work
    at the engine's estimated rate, like the engine's own measurements. Each timed pair of a
    baseline is followed by a timed pair of the engine, so every speed-up is a ratio of two
    measurements taken together (``speedup`` in each variant's entry).
    """
    engine, engine_steps, engine_nfe, _ = engine_plan("gm", "euler", d, particles, seconds)
    engine_added = (engine_nfe[1] - engine_nfe[0]) * d * particles
    careful_steps = marginal_steps("gm", "euler", d, particles, 2, seconds)
    import torch

    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    out = {"torch": torch.__version__, "threads": torch.get_num_threads(),
           "step_check_max_rel_diff": torch_check(torch, device)}
    compiled = None
    for variant in variants:
        runs = []
        steps = naive_steps if variant == "a_naive" else careful_steps
        for n in steps:
            plan = euler_plan(d, n)
            if variant == "a_naive":
                def run(plan=plan):
                    x = torch.randn(d, particles, device=device)
                    torch_naive(torch, x, plan, d)
                    sync()
            else:
                if variant == "c_compile" and compiled is None:
                    compiled = torch.compile(careful_step, fullgraph=True, dynamic=False)
                step = compiled if variant == "c_compile" else careful_step
                args = careful_args(torch, plan, d, device)

                def run(args=args, step=step):
                    x = torch.randn(particles, d, device=device)
                    for a in args:
                        x = step(torch, x, *a)
                    sync()
            runs.append(run)
        diffs, walls = [], []
        with torch.no_grad():
            if variant == "a_naive":  # slow: one short warm-up run (first-call costs), two pairs
                runs[0]()
            else:
                runs[0](), runs[1]()
            engine_diffs = []
            for _ in range(2 if variant == "a_naive" else reps):
                short, long = _best(runs[0], 1, warmup=False), _best(runs[1], 1, warmup=False)
                diffs.append(long - short)
                walls.append(long)
                engine_diffs.append(engine(engine_steps[1]).wall_seconds
                                    - engine(engine_steps[0]).wall_seconds)
        per = marginal_cost(diffs, (steps[1] - steps[0]) * d * particles, variant)
        engine_per = marginal_cost(engine_diffs, engine_added, f"engine paired with {variant}")
        out[variant] = {"seconds_per_coord_eval": per, "coord_updates_per_s": 1 / per,
                        "end_to_end_s": min(walls), "steps": list(steps),
                        "engine_seconds_per_coord_eval": engine_per, "speedup": per / engine_per}
    return out


# -- memory --------------------------------------------------------------------------------------
def memory_check(args, d: int = 10**7, particles: int = 1024, steps: int = 4) -> dict:
    """One GM Euler run at ``d x particles``; prints the sampler's memory report."""
    info = machine()
    print(f"# {info['command']}\n# {info['date']}  {info['device']}, load {info['load_average_at_start']}")
    interpolant, schedule = preset(SCHEDULE, d)
    result = sample(GaussianMixture(dim=d), interpolant, schedule, jax.random.key(0), particles,
                    steps=steps, memory_budget=int(args.memory_gb * 2**30))
    report = {"machine": info, "d": d, "particles": particles, "steps": steps,
              "memory_budget_bytes": int(args.memory_gb * 2**30), "chunk_size": result.chunk_size,
              "wall_seconds": result.wall_seconds, "memory": result.memory,
              "nonfinite": result.nonfinite,
              "state_bytes_all_particles": 4 * d * particles}
    mem = result.memory
    print(f"d={d:.0e} particles={particles} steps={steps}: chunk {result.chunk_size}, wall "
          f"{result.wall_seconds:.1f} s; estimated working set "
          f"{mem['estimated_bytes_per_device'] / 2**30:.2f} GiB, peak RSS "
          f"{mem['peak_rss_bytes'] / 2**30:.2f} GiB, device peak {mem['device_peak_bytes']} "
          f"(all states at once would be {4 * d * particles / 2**30:.0f} GiB)")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1))
    return report


# -- report --------------------------------------------------------------------------------------
def _fmt(x: float) -> str:
    return f"{x:.3g}"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small grid, < 4 min on 2 CPU cores")
    parser.add_argument("--gpu", action="store_true", help="require a GPU backend (jax[cuda])")
    parser.add_argument("--json", type=Path, help="write every figure to this JSON file")
    parser.add_argument("--no-torch", action="store_true", help="skip the PyTorch baselines")
    parser.add_argument("--reps", type=int, default=3,
                        help="timed (short, long) run pairs per point; the median difference is kept")
    parser.add_argument("--memory-check", action="store_true",
                        help="instead: one GM run at d=1e7 with 1024 particles, memory report only")
    parser.add_argument("--memory-gb", type=float, default=2.0,
                        help="memory budget for --memory-check chunking (GiB, default 2)")
    args = parser.parse_args(argv)
    if args.memory_check:
        return memory_check(args)

    backend = jax.default_backend()
    if args.gpu and backend != "gpu":
        parser.error(f"--gpu needs a CUDA JAX backend, found {backend!r} (install jax[cuda12])")
    gpu = backend == "gpu"
    info = machine()
    print(f"# {info['command']}\n# {info['date']}  {info['backend']}: {info['device']} "
          f"x{info['num_devices']}, cpu {info['cpu']} ({info['cpu_count']} cores), "
          f"load {info['load_average_at_start']}", flush=True)

    bw = bandwidth(2**28 if gpu else 2**26)
    print(f"bandwidth ({bw['array_bytes'] / 2**20:.0f} MiB arrays): triad {_fmt(bw['triad_GBps'])} "
          f"GB/s, scale {_fmt(bw['scale_GBps'])} GB/s", flush=True)

    rk_solvers = ("euler", "heun", "midpoint", "rk4", "diffrax-heun", "diffrax-rk4")
    # exponential and multistep solvers (issue 13): cost per evaluation against Euler timed in
    # the same group (target <= 1.3x: a stored history, not an extra reduction)
    exp_solvers = ("ddim", "dpm-solver-2", "dpmpp-2m", "dpmpp-3m", "unipc", "deis", "ipndm")
    # grid rows: ((target, solver) runs timed together, d, particles, seconds of marginal work)
    # the roofline point: per chunk 2.5 GB on GPU, 256 MB on CPU (128 MB with --quick), all far
    # beyond the last-level cache
    roof_d, roof_b = (10**7, 64) if gpu else (10**6, 32 if args.quick else 64)
    work = 0.02 if gpu else 0.3  # seconds of marginal work; the roofline point gets 4x (quick: 3x)
    gm_rk = [("gm", s) for s in rk_solvers]
    if args.quick:
        cw_runs = [(t, "euler") for t in ("cw-exact", "cw-two-saddle")]
        if gpu:  # CW at d = 1e6 with its own GM reference
            grid = [(gm_rk[:-1], roof_d, roof_b, 3 * work),
                    ([("gm", "euler")] + cw_runs, 10**6, 64, work)]
        else:  # CW timed with the solvers at the roofline point
            grid = [(gm_rk[:-1] + cw_runs, roof_d, roof_b, 3 * work)]
        grid += [([("gm", "euler")], d, 64, work) for d in (10**4, 10**5)]
        grid += [([("gm", "euler")], 10**7, 256 if gpu else 8, work)]
        grid += [([("gm", "euler")] + [("gm", s) for s in exp_solvers], roof_d, roof_b, work)]
        torch_steps = (2, 5)
    else:
        grid = []
        for d in (10**4, 10**5, 10**6, 10**7):
            for b in ((8, 64) if d >= 10**7 and not gpu else (8, 64, 256)):
                roof = (d, b) == (roof_d, roof_b)
                runs = gm_rk if roof else [("gm", s) for s in ("euler", "heun", "rk4")]
                grid.append((runs, d, b, (4 if roof else 2) * work))
            cw_b = 8 if d >= 10**7 and not gpu else 16
            runs = [("gm", "euler")] + [(t, s) for t in ("cw-exact", "cw-two-saddle")
                                        for s in ("euler", "heun", "rk4")]
            grid.append((runs, d, cw_b, 2 * work))
        grid.append(([("gm", "euler")] + [("gm", s) for s in exp_solvers], roof_d, roof_b, 2 * work))
        torch_steps = (2, 6)

    points: list[Point] = []
    print("\ntarget          solver        d          B     ns/coord-eval  Gcoord-upd/s  "
          "end-to-end s  steps    chunk GB/s(model)", flush=True)
    for group, (runs, d, b, seconds) in enumerate(grid):
        for pt in engine_points(runs, d, b, seconds, args.reps):
            solver, target = pt.solver, pt.target
            pt.group = group
            pt.model_bytes = gm_bytes_model(solver) if target == "gm" else None
            if math.isfinite(pt.seconds_per_coord_eval):
                # any evaluation reads each coordinate at least once: 4 bytes, a lower bound
                floor = pt.model_bytes if pt.model_bytes is not None else MIN_BYTES_PER_COORD_EVAL
                pt.suspect = floor / pt.seconds_per_coord_eval / 1e9 > SUSPECT_BANDWIDTH * bw["triad_GBps"]
                if pt.model_bytes is not None:
                    pt.effective_GBps = pt.model_bytes / pt.seconds_per_coord_eval / 1e9
            points.append(pt)
            gbps = f"{pt.effective_GBps:8.1f}" if pt.effective_GBps is not None else " " * 8
            print(f"{target:15s} {solver:13s} {d:<10.0e} {b:<5d} {pt.seconds_per_coord_eval * 1e9:13.3f}"
                  f"  {pt.coord_updates_per_s / 1e9:12.3f}  {pt.end_to_end_s:12.3f}  "
                  f"{pt.steps[0]}->{pt.steps[1]:<5d} {pt.chunk_size:<5d} {gbps}"
                  + ("  suspect: bytes / time above 2x triad" if pt.suspect else ""),
                  flush=True)

    def find(target, solver, d, b, group=None):
        for pt in points:
            if (pt.target, pt.solver, pt.d, pt.particles) == (target, solver, d, b) and (
                    group is None or pt.group == group):
                return pt
        return None

    def cost(pt):  # per coordinate-evaluation; NaN for a suspect row
        return math.nan if pt is None or pt.suspect else pt.seconds_per_coord_eval

    euler = find("gm", "euler", roof_d, roof_b)
    roof_solvers = [s for s in rk_solvers if find("gm", s, roof_d, roof_b)]
    summary = {
        "roofline_point": {"d": roof_d, "particles": roof_b},
        "bytes_per_coord_model": {s: gm_bytes_model(s) for s in roof_solvers},
        "xla_bytes_per_coord_eval": {s: xla_bytes_per_coord_eval("gm", s) for s in roof_solvers},
        "roofline_fraction": (BYTES_PER_COORD_EULER / cost(euler) / 1e9) / bw["triad_GBps"],
        "roofline_fraction_by_solver": {
            s: gm_bytes_model(s) / cost(find("gm", s, roof_d, roof_b)) / 1e9 / bw["triad_GBps"]
            for s in roof_solvers if gm_bytes_model(s) is not None},
        "rk_to_euler": {s: cost(find("gm", s, roof_d, roof_b)) / cost(euler)
                        for s in roof_solvers if s != "euler"},
        "exponential_to_euler": {},
        "cw_to_gm": {},
        "suspect_rows": [f"{p.target} {p.solver} d={p.d:.0e} B={p.particles}" for p in points if p.suspect],
    }
    for pt in points:
        if pt.target == "gm" and pt.solver in exp_solvers:
            base = find("gm", "euler", pt.d, pt.particles, pt.group)
            summary["exponential_to_euler"][pt.solver] = cost(pt) / cost(base)
        if pt.target.startswith("cw") and pt.solver == "euler":
            gm = find("gm", "euler", pt.d, pt.particles, pt.group) or find("gm", "euler", pt.d, pt.particles)
            if gm is not None:
                summary["cw_to_gm"][f"{pt.target} d={pt.d:.0e} B={pt.particles}"] = (
                    cost(pt) / cost(gm))
    print(f"\nroofline (Euler, GM, d={roof_d:.0e}, B={roof_b}; model {BYTES_PER_COORD_EULER} B/coord "
          f"vs triad): {summary['roofline_fraction']:.2f}  "
          f"({BYTES_PER_COORD_EULER / cost(euler) / 1e9:.3g} GB/s effective)")
    print("bytes per coordinate-evaluation, model / XLA's count: "
          + ", ".join(f"{s} {summary['bytes_per_coord_model'][s] or float('nan'):.1f} / "
                      f"{summary['xla_bytes_per_coord_eval'][s]:.1f}" for s in roof_solvers))
    print("roofline fraction by solver (own model): "
          + ", ".join(f"{k} {v:.2f}" for k, v in summary["roofline_fraction_by_solver"].items()))
    print("cost per evaluation / Euler's: "
          + ", ".join(f"{k} {v:.2f}" for k, v in summary["rk_to_euler"].items()))
    print("exponential/multistep cost per evaluation / Euler's (same group): "
          + ", ".join(f"{k} {v:.2f}" for k, v in summary["exponential_to_euler"].items()))
    if summary["suspect_rows"]:
        print("suspect rows (kept out of these ratios): " + "; ".join(summary["suspect_rows"]))
    print("CW / GM per evaluation (Euler): "
          + ", ".join(f"{k}: {v:.2f}" for k, v in summary["cw_to_gm"].items()))

    baselines = None
    if not args.no_torch:
        try:
            import torch  # noqa: F401
        except ImportError:
            print("PyTorch not installed (pip install nsjax[bench]): baselines skipped")
        else:
            device = "cuda" if gpu else "cpu"
            baselines = torch_points(roof_d, roof_b, torch_steps, (3 if args.quick else 4) * work,
                                     min(args.reps, 2) if args.quick else args.reps, device,
                                     ("a_naive", "b_careful", "c_compile"))
            print(f"\nPyTorch {baselines['torch']} ({device}, {baselines['threads']} threads), GM Euler "
                  f"d={roof_d:.0e} B={roof_b}; step check vs engine: max rel diff "
                  f"{baselines['step_check_max_rel_diff']:.1e}")
            summary["speedup_over"] = {}
            for v in ("a_naive", "b_careful", "c_compile"):
                rate = baselines[v]["coord_updates_per_s"]
                summary["speedup_over"][v] = baselines[v]["speedup"]
                print(f"  {v:10s} {rate / 1e9:8.3f} Gcoord-upd/s   end-to-end "
                      f"{baselines[v]['end_to_end_s']:.3f} s   engine (timed alongside) "
                      f"{1e-9 / baselines[v]['engine_seconds_per_coord_eval']:.3f} Gcoord-upd/s"
                      f"   speed-up {summary['speedup_over'][v]:.1f}x")
    info["load_average_at_end"] = os.getloadavg()
    print(f"\n# load average at end: {info['load_average_at_end']}")
    report = {"machine": info, "bandwidth": bw, "points": [asdict(p) for p in points],
              "baselines": baselines, "summary": summary}
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1))
        print(f"wrote {args.json}")
    return report


if __name__ == "__main__":
    main()
