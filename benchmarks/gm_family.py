"""A schedule learned on a family of GMs (issue 11): exact GM errors and K-mode NFE to tolerance.

``benchmarks/results/learned/gmfam_vp_heun6.json`` is trained by ``nsjax optimize --family`` on
GMs only (the members are in the file's ``target.family``). This script measures

(a) the exact errors (:func:`nsjax.optimize.gm_table`, no sampling error) of the family-trained
    files (``gmfam_dr_vp_heun6.json`` also trained with ``--dim-ratios 0.5,1``: each GM also at
    d / 2 with the schedule tuned for d), the one-GM-trained ``vp_heun6.json``, the K-mode-trained ``kmode_vp_heun6.json`` and
    the paper's dilated VP (kappa = 3), Heun, 6 steps, on the family members, the default GM
    (p = 0.8, sigma2 = 1/4) and held-out GMs, at d = 1e3, 1e6, 1e9, 1e12 (and the same GMs at d / 2
    with the schedule tuned for d: ``dim_ratio`` 0.5); in units of the
    tolerance: ``|p_error| / 0.01`` and ``|sigma2_error| / 0.02`` (pass: both <= 1);
(b) on the K-mode mixture (weights 0.5/0.3/0.2, variances 0.25/0.5/1), the NFE to tolerance of the
    family-trained file(s) with ``benchmarks/transfer.py``'s :func:`nfe_to_tolerance` at its
    defaults (d = 1e3, 25,000 particles, Heun, its ladder of N), beside the committed numbers of
    ``benchmarks/results/transfer.json`` (GM-trained, K-mode-trained, dilation).

    python benchmarks/gm_family.py --out benchmarks/results/gm_family.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import transfer  # noqa: E402  (enables float64, as it does for its own runs)

from nsjax import GaussianMixture  # noqa: E402
from nsjax.experiments.config import P_TOL, S2_TOL  # noqa: E402
from nsjax.experiments.learned import KModeFeatures  # noqa: E402
from nsjax.interpolants import make_interpolant  # noqa: E402
from nsjax.optimize import gm_table  # noqa: E402
from nsjax.registry import noise_scale  # noqa: E402
from nsjax.schedule_files import git_revision, load_schedule, read_schedule  # noqa: E402
from nsjax.schedules import TwoPhase  # noqa: E402
from nsjax.solvers import make_solver  # noqa: E402

LEARNED = os.path.join(HERE, "results", "learned")
FAMILY_FILES = {
    "gmfam-learned": os.path.join(LEARNED, "gmfam_vp_heun6.json"),
    "gmfam-dr-learned": os.path.join(LEARNED, "gmfam_dr_vp_heun6.json"),
}
DIMS = (1e3, 1e6, 1e9, 1e12)
RATIOS = (1.0, 0.5)  # the GM at a*d, the schedule tuned for d (1/2: a K-mode pair of modes)
DEFAULT_GM = (0.8, 0.25)
# Held out (not in the family): the GM on which vp_heun6.json needs 32 NFE (p = 0.3, sigma2 = 2),
# and the corners of p in {0.5, 0.8, 0.9} x sigma2 in {0.25, 2} not in the family.
HELD_OUT = ((0.3, 2.0), (0.5, 0.25), (0.8, 2.0), (0.5, 2.0), (0.9, 0.25), (0.9, 1.0))


def _rel(path: str) -> str:
    return os.path.relpath(path, os.path.dirname(HERE))


def exact_table(schedules: dict, members: list[tuple[float, float]], dims=DIMS, ratios=RATIOS) -> dict:
    """``{schedule: {"rows": [{p, sigma2, d, dim_ratio, p_error, sigma2_error, p_ratio,
    sigma2_ratio, pass}], ...}}``: one compiled program per schedule (``gm_table`` over the
    members, ``dims`` and ``ratios``), Heun; ``worst`` = the largest error/tol over the rows with
    ``dim_ratio = 1`` (``worst_all``: all rows)."""
    targets = [GaussianMixture(dim=int(min(dims)), p=p, sigma2=s2) for p, s2 in members]
    out = {}
    for name, (steps, schedule) in schedules.items():
        t0 = time.perf_counter()
        errors = gm_table(targets, schedule, dims, solver=make_solver("heun"), steps=steps, dim_ratios=ratios)
        p_err, s2_err = np.asarray(errors.p_error), np.asarray(errors.sigma2_error)
        rows = []
        for i, (p, s2) in enumerate(members):
            for j, d in enumerate(dims):
                for k, a in enumerate(ratios):
                    pr, sr = abs(p_err[i, j, k]) / P_TOL, abs(s2_err[i, j, k]) / S2_TOL
                    rows.append(
                        {"p": p, "sigma2": s2, "d": d, "dim_ratio": a, "steps": steps,
                         "p_error": float(p_err[i, j, k]), "sigma2_error": float(s2_err[i, j, k]),
                         "p_ratio": float(pr), "sigma2_ratio": float(sr), "pass": bool(pr <= 1 and sr <= 1)}
                    )
        worst = {
            key: max(max(r["p_ratio"], r["sigma2_ratio"]) for r in rows if keep(r))
            for key, keep in (("worst", lambda r: r["dim_ratio"] == 1.0), ("worst_all", lambda r: True))
        }
        out[name] = {**worst, "rows": rows, "seconds": time.perf_counter() - t0}
        print(f"{name:18s} worst error/tol {worst['worst']:.3g} (a = 1), {worst['worst_all']:.3g} (all)"
              f" ({time.perf_counter() - t0:.0f} s)", flush=True)
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--no-kmode", action="store_true", help="exact GM errors only (seconds)")
    parser.add_argument("--out", default=os.path.join(HERE, "results", "gm_family.json"))
    args = parser.parse_args(argv)
    start = time.perf_counter()
    files = {k: v for k, v in FAMILY_FILES.items() if os.path.exists(v)}
    if not files:
        raise SystemExit(f"no family-trained file: train {_rel(FAMILY_FILES['gmfam-learned-6'])} first")
    families = {k: [(m["p"], m["sigma2"]) for m in read_schedule(v)["target"]["family"]] for k, v in files.items()}
    family = list(dict.fromkeys(m for f in families.values() for m in f))
    members = list(dict.fromkeys([*family, DEFAULT_GM, *HELD_OUT]))
    out = {
        "command": " ".join([os.path.basename(sys.executable), *sys.argv]),
        "machine": f"{platform.machine()} {os.cpu_count()} cpus, jax {jax.__version__}",
        "revision": git_revision(),
        "tolerance": {"p": P_TOL, "sigma2_relative": S2_TOL},
        "solver": "heun",
        "files": {k: _rel(v) for k, v in files.items()},
        "family": [{"p": p, "sigma2": s2} for p, s2 in family],
        "held_out": [{"p": p, "sigma2": s2} for p, s2 in members if (p, s2) not in family],
        "training": {
            k: {**read_schedule(v)["optimizer"], "dim_ratios": read_schedule(v)["objective"].get("dim_ratios", [1.0])}
            for k, v in files.items()
        },
    }

    # (a) exact errors; the schedules' shapes at d = 1e3 (the dimension is replaced per d).
    dim = min(DIMS)
    schedules = {k: (read_schedule(v)["steps"], load_schedule(v, dim, dtype=jnp.float64)) for k, v in files.items()}
    schedules["gm-learned"] = (6, load_schedule(transfer.GM_FILE, dim, dtype=jnp.float64))
    schedules["kmode-learned"] = (6, load_schedule(transfer.KMODE_FILE, dim, dtype=jnp.float64))
    schedules["vp-dilated"] = (6, TwoPhase.init("vp", dim, kappa=transfer.KAPPA, num_coefficients=4, dtype=jnp.float64))
    out["exact"] = {"dims": list(DIMS), "dim_ratios": list(RATIOS), "schedules": exact_table(schedules, members)}

    # (b) the K-mode mixture, at transfer.py's defaults.
    if not args.no_kmode:
        eval_dim, particles = 1000, 25_000
        with open(os.path.join(HERE, "results", "transfer.json")) as handle:
            committed = json.load(handle)["targets"]["kmode"]
        target = transfer.make_target("kmode", eval_dim)
        observable = KModeFeatures(target)
        interpolant = make_interpolant("linear", noise_scale("vp", eval_dim))
        entry = {"d": eval_dim, "particles": particles, "nfe_to_tolerance": {}, "rows": {}, "seconds": {},
                 "committed": {"source": "benchmarks/results/transfer.json", "revision": None,
                               "nfe_to_tolerance": committed["nfe_to_tolerance"]}}
        with open(os.path.join(HERE, "results", "transfer.json")) as handle:
            entry["committed"]["revision"] = json.load(handle)["revision"]
        for name, path in files.items():
            print(f"kmode {name}", flush=True)
            t0 = time.perf_counter()
            schedule = load_schedule(path, eval_dim, dtype=jnp.float64)
            rows, nfe = transfer.nfe_to_tolerance(
                target, interpolant, schedule, particles=particles, observable=observable
            )
            entry["nfe_to_tolerance"][name] = nfe
            entry["rows"][name] = rows
            entry["seconds"][name] = time.perf_counter() - t0
        own = committed["nfe_to_tolerance"]["target-learned"]
        entry["ratio_to_kmode_learned"] = {
            k: (v / own if v and own else None) for k, v in entry["nfe_to_tolerance"].items()
        }
        entry["within_1_5x"] = {k: bool(r is not None and r <= 1.5) for k, r in entry["ratio_to_kmode_learned"].items()}
        out["kmode"] = entry
        print(json.dumps({"nfe": entry["nfe_to_tolerance"], "committed": committed["nfe_to_tolerance"]}))
    out["wall_seconds"] = time.perf_counter() - start
    with open(args.out, "w") as handle:
        json.dump(out, handle, indent=1, default=float)
    print(f"wall {out['wall_seconds']:.0f} s -> {args.out}")


if __name__ == "__main__":
    main()
