"""Tolerance benchmark: the tolerance study of ``nsjax reproduce --full`` at benchmark size.

Exact GM reduction (p = 0.8, sigma2 = 1/4, kappa = 3, float64), infinite-ensemble features
(:func:`nsjax.experiments.tolerance.exact_features`): ``N(eps)`` per paper schedule x solver
(Euler, Heun, DPM-Solver++ 2M) at d = 1e3, 1e6, 1e9 for eps = 0.1 .. 0.001; errors at N = 64
against d = 1e3 .. 1e12; the dilated-VE Euler floor law across kappa in {2, 3, 6, 10} and sigma2
in {1/4, 1, 2} at d = 1e12; the dilated-VE Heun growth ``sigma2_hat ~ C d / N^2``; steps to
tolerance on the trig interpolant beside the linear one (Euler, Heun; d = 1e3 .. 1e9).
Writes ``tolerance.json`` (the study, the command and the machine), ``tolerance.md`` (the report
section) and the figures ``tolerance_*.png`` to ``--out``.

    python benchmarks/tolerance.py --out benchmarks/results
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import sys
import time

import jax

jax.config.update("jax_enable_x64", True)

from nsjax.experiments import config_for  # noqa: E402
from nsjax.experiments.schema import TOLERANCE_STUDY  # noqa: E402
from nsjax.experiments.tolerance import report_lines, tolerance_figures, tolerance_study  # noqa: E402


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="benchmarks/results")
    parser.add_argument("--max-steps", type=int, default=16384, help="largest N of the ladder")
    args = parser.parse_args(argv)
    cfg = dataclasses.replace(config_for("full"), tolerance_max_steps=args.max_steps)
    command = "python " + " ".join(sys.argv)
    machine = (f"{platform.machine()}, {os.cpu_count()} CPU cores, jax {jax.__version__} "
               f"({jax.default_backend()})")
    print(f"command: {command}\nmachine: {machine}", flush=True)
    start = time.perf_counter()
    study = tolerance_study(cfg)
    seconds = time.perf_counter() - start
    os.makedirs(args.out, exist_ok=True)
    document = study.to_json()
    TOLERANCE_STUDY.check(document, "['tolerance_study']")
    record = {"command": command, "machine": machine, "seconds": seconds, "config": cfg.to_json(),
              "tolerance_study": document}
    with open(os.path.join(args.out, "tolerance.json"), "w") as handle:
        json.dump(record, handle, indent=1)
    lines = report_lines(study)
    with open(os.path.join(args.out, "tolerance.md"), "w") as handle:
        handle.write(f"<!-- {command}; {machine}; {seconds:.0f} s -->\n" + "\n".join(lines) + "\n")
    paths = tolerance_figures(study, args.out)
    print("\n".join(lines))
    print(f"{seconds:.0f} s; wrote tolerance.json, tolerance.md, " + ", ".join(os.path.basename(p) for p in paths))


if __name__ == "__main__":
    main()
