"""``nsjax reproduce``: run every study of a :class:`Config`, write report.md, results.json, figures.

:func:`add_parser` registers the command with :mod:`nsjax.cli` (through :mod:`nsjax.reproduce`).
The studies, figures and report load on the first :func:`run`, so that ``nsjax --help`` and
``nsjax sample`` do not import matplotlib.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import time
from types import MappingProxyType
from typing import TYPE_CHECKING

from .config import Config, config_for

if TYPE_CHECKING:
    from .results import Results

__all__ = ["run", "tqdm_progress", "add_parser"]


def tqdm_progress(total: int, description: str):
    """A tqdm bar (:data:`nsjax.experiments.studies.Progress`)."""
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=description, unit="run", leave=True, dynamic_ncols=True)


def run(cfg: Config, folder: str, progress=tqdm_progress) -> Results:
    """Run every study of ``cfg``; write report.md, results.json and the figures to ``folder``.

    Order: reduction studies (paper, standard, kappa check), adaptive solvers, full particles
    (GM, CW), Figures 1-2, sweep versus loop; then the dichotomy, the result figures, the report.
    ``progress(total, description)``: one bar per sweep (default tqdm; ``studies.silent``: none).
    results.json is checked against :mod:`nsjax.experiments.schema` before it is written.
    """
    import jax

    jax.config.update("jax_enable_x64", True)
    from . import figures, studies
    from .report import write_report
    from .results import Results
    from .schema import validate

    os.makedirs(folder, exist_ok=True)
    start = time.perf_counter()
    runtime: dict[str, float] = {}

    def timed(name, fn, *args):
        t0 = time.perf_counter()
        value = fn(*args)
        runtime[name + "_s"] = time.perf_counter() - t0
        return value

    paper = timed("reduction_paper", studies.reduction_study, cfg, "paper", progress)
    standard = kappa = loop = None
    if cfg.standard:
        standard = timed("reduction_standard", studies.reduction_study, cfg, "standard", progress)
    if cfg.kappa_check:
        kappa = timed("reduction_kappa_check", studies.reduction_study, cfg, "kappa", progress)
    adaptive = timed("adaptive", studies.adaptive_study, cfg, progress)
    gm = timed("particles_gm", studies.particle_study, cfg, "gm", progress)
    cw = timed("particles_cw", studies.particle_study, cfg, "cw", progress)
    fig1 = timed("figure1", figures.figure1, cfg, folder)
    fig2 = timed("figure2", figures.figure2, cfg, folder, progress)
    if cfg.loop_runs:
        loop = timed("loop", studies.loop_comparison, cfg, paper, progress)
    split = None
    if cfg.split:
        from . import standard_split

        split = timed("standard_split", standard_split.standard_split_study, cfg, progress)
    solvers = None
    if cfg.solver_study_solvers:
        solvers = timed("solver_study", studies.solver_study, cfg, progress)
    tolerance = None
    if cfg.tolerance:
        from .tolerance import tolerance_study

        tolerance = timed("tolerance", tolerance_study, cfg, progress)
    learned = None
    if cfg.learned_files or cfg.learned_per_d:
        from . import learned as learned_section

        learned = timed("learned", learned_section.learned_study, cfg, progress)
    cw_reduced = None
    if cfg.cw_reduced_dims:
        from . import cw_reduced as cw_reduced_section

        cw_reduced = timed("cw_reduced", cw_reduced_section.cw_reduced_study, cfg, progress)
    dichotomy = studies.dichotomy(cfg, paper, cw)
    paths = (fig1.path, fig2.path) + figures.result_figures(cfg, folder, paper, standard, cw, adaptive)
    if tolerance is not None:
        from .tolerance import tolerance_figures

        paths += tolerance_figures(tolerance, folder)
    if split is not None:
        paths += (standard_split.figure(split, folder),)
    if learned is not None:
        paths += learned_section.figures(learned, folder)
    if cw_reduced is not None:
        paths += (cw_reduced_section.cw_reduced_figure(cw_reduced, folder),)
    runtime["total_s"] = time.perf_counter() - start
    results = Results(
        config=cfg,
        machine=f"{platform.machine()}, {os.cpu_count()} CPU cores, "
        f"jax {jax.__version__} ({jax.default_backend()})",
        paper=paper,
        standard=standard,
        kappa_check=kappa,
        adaptive=adaptive,
        gm_particles=gm,
        cw_particles=cw,
        figure1=fig1,
        figure2=fig2,
        loop=loop,
        dichotomy=dichotomy,
        figures=tuple(os.path.basename(p) for p in paths),
        runtime=MappingProxyType(runtime),
        solvers=solvers,
        tolerance=tolerance,
        split=split,
        learned=learned,
        cw_reduced=cw_reduced,
    )
    document = results.to_json()
    validate(document)
    write_report(results, folder)
    with open(os.path.join(folder, "results.json"), "w") as handle:
        json.dump(document, handle, indent=1)
    return results


def add_parser(subparsers) -> None:
    """Register ``nsjax reproduce`` (called by :func:`nsjax.cli.build_parser`)."""
    parser = subparsers.add_parser(
        "reproduce",
        help="regenerate the paper's evidence (report.md, results.json, figures)",
        description="Run the paper's studies on this machine: dichotomy, steps versus dimension "
        "(exact GM reduction, any d), feature tables (GM, CW), adaptive solvers, Figures 1-2. "
        "Default: under 10 minutes on 2 CPU cores; --quick: under 2 minutes; --full: GPU-sized.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="small sizes (CI), under 2 minutes")
    size.add_argument("--full", action="store_true", help="large sweeps (GPU-sized)")
    parser.add_argument(
        "--out",
        metavar="FOLDER",
        default="reproduce_out",
        help="output folder (report.md, results.json, *.png)",
    )
    parser.add_argument("--seed", type=int, default=0, help="PRNG seed of particle runs")
    parser.set_defaults(func=_run_cli, out_is_folder=True)


def _run_cli(args) -> None:
    mode = "quick" if args.quick else "full" if args.full else "default"
    cfg = dataclasses.replace(config_for(mode), seed=args.seed)
    results = run(cfg, args.out)
    print(
        f"nsjax reproduce ({cfg.mode}): {results.runtime['total_s']:.0f} s; wrote "
        f"{os.path.join(args.out, 'report.md')}, results.json and {len(results.figures)} figures"
    )
    return None
