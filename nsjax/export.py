"""Schedules out to other samplers: the timesteps or sigmas of an ``N``-step grid, for diffusers.

The grid is the one nsjax itself steps on (:func:`nsjax.solve.step_grid`: ``N`` steps, uniform
within each schedule piece, breakpoints on it); at each grid time ``t_i`` the schedule gives
``(tau_i, 1 - tau_i)``, mapped by signal-to-noise matching with the interpolant's noise scale
``c`` (docs/theory.md §5):

- ``kind="ve"``: ``sigma_i = c (1 - tau_i) / tau_i`` (``x = x1 + sigma z``), descending; diffusers'
  convention ends the list with ``sigma = 0`` (an Euler step to 0 returns the denoiser, so a
  schedule with ``tau(1) < 1`` gets ``0`` appended: its final denoising step). Ready for
  ``EulerDiscreteScheduler.set_timesteps(sigmas=...)`` / ``pipe(..., sigmas=...)``.
- ``kind="vp"``: DDPM timesteps (diffusers' ``0..T-1`` units, ``n - 1``) whose ``abar`` table
  value (:class:`nsjax.schedules.DDPM`) matches ``tau_i``: ``tau = c a / (sigma + c a)``,
  ``a = sqrt(abar)``, ``sigma = sqrt(1 - abar)``. ``timesteps``: descending integers (for
  ``DDPMScheduler.set_timesteps(timesteps=...)`` / ``pipe(..., timesteps=...)``), one per model
  evaluation: the grid times with ``tau < 1`` (a schedule ending at ``tau = 1`` drops its last
  point, which diffusers' final step to ``abar = 1`` reaches); ``timesteps_continuous``: the same
  unrounded; ``sigmas``: the same points in ``EulerDiscreteScheduler``'s units
  ``sqrt((1 - abar) / abar)``, ending with 0.

``tau = 0`` (pure noise, where every dilated schedule starts) has ``sigma = inf``: it is clipped to
``sigma_max`` (the model's largest trained noise; VP: the table's top timestep), and the number of
clipped points is reported.
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np

from ._checks import check_dim, check_positive
from .interpolants import AbstractInterpolant
from .schedules import DDPM, AbstractSchedule, tau_to_ddpm_timestep, tau_to_sigma
from .solve import step_grid

__all__ = ["KINDS", "grid_values", "to_diffusers"]

KINDS = ("vp", "ve")


def grid_values(schedule: AbstractSchedule, steps: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(t, tau, 1 - tau)`` (host float64) at the ``N + 1`` times of ``step_grid(schedule, N)``."""
    pieces = step_grid(schedule, steps)
    ts, taus, taus_c = [], [], []
    with jax.enable_x64(True):
        for k, grid in enumerate(pieces):
            grid = grid if k == 0 else grid[1:]
            value = schedule.evaluate(np.asarray(grid, np.float64), k)
            ts.append(grid)
            taus.append(np.asarray(value.tau, np.float64))
            taus_c.append(np.asarray(value.tau_c, np.float64))
    return np.concatenate(ts), np.concatenate(taus), np.concatenate(taus_c)


def to_diffusers(
    schedule: AbstractSchedule,
    interpolant: AbstractInterpolant,
    steps: int,
    kind: str,
    *,
    sigma_max: float | None = None,
    ddpm: DDPM | None = None,
) -> dict[str, Any]:
    """The ``steps``-step grid of ``schedule`` as diffusers lists (module docstring).

    Args:
        schedule, interpolant: what nsjax would sample with (their noise scales must agree).
        steps: ``N``, at least one per schedule piece.
        kind: ``"vp"`` (DDPM timesteps, and ``EulerDiscreteScheduler`` sigmas of the DDPM table)
            or ``"ve"`` (sigmas of ``x = x1 + sigma z``).
        sigma_max: VE: larger sigmas (``inf`` at ``tau = 0``) are clipped to it (default: none;
            an infinite sigma then raises).
        ddpm: the DDPM table for ``kind="vp"`` (default ``DDPM()``: diffusers' linear betas).

    Returns:
        A JSON-ready dict: ``t``, ``tau``, ``sigmas``, ``clipped`` and, for VP, ``timesteps``,
        ``timesteps_continuous``, plus ``kind``, ``steps``, ``noise_scale``, ``ends_at_data``.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    steps = check_dim("steps", steps)
    if sigma_max is not None:
        check_positive("sigma_max", sigma_max)
    schedule.check_noise_scale(interpolant.noise_scale)
    c = float(interpolant.noise_scale)
    t, tau, tau_c = grid_values(schedule, steps)
    evaluated = tau_c > 0  # model evaluations: every grid point short of the data
    sigmas = tau_to_sigma(tau, tau_c, c)[evaluated]
    out: dict[str, Any] = {
        "format": "diffusers",
        "kind": kind,
        "steps": steps,
        "noise_scale": c,
        "ends_at_data": bool(schedule.ends_at_data),
        "t": t.tolist(),
        "tau": tau.tolist(),
    }
    if kind == "vp":
        ddpm = DDPM() if ddpm is None else ddpm
        top = ddpm.num_train_steps - 1
        continuous = tau_to_ddpm_timestep(tau, tau_c, c, ddpm=ddpm)[evaluated]
        clipped = int(np.sum(continuous > top))
        continuous = np.minimum(continuous, top)
        with jax.enable_x64(True):
            log_abar_top = float(ddpm.log_alpha_bar(np.float64(top + 1)))
        sigma_top = float(np.sqrt(np.expm1(-log_abar_top)))
        ratio = sigmas  # c (1 - tau) / tau = sqrt((1 - abar) / abar)
        rounded = np.clip(np.rint(continuous), 0, top).astype(int)
        out.update(
            timesteps=rounded.tolist(),
            timesteps_continuous=continuous.tolist(),
            sigmas=[*np.minimum(ratio, sigma_top).tolist(), 0.0],
            clipped=clipped,
            distinct_timesteps=bool(np.all(np.diff(rounded) < 0)),
        )
    else:
        clipped = int(np.sum(sigmas > sigma_max)) if sigma_max is not None else 0
        if sigma_max is None and np.any(np.isinf(sigmas)):
            raise ValueError(
                "sigma_max must be given (the model's largest sigma, > 0): the schedule starts at "
                "tau = 0, sigma = inf"
            )
        if sigma_max is not None:
            sigmas = np.minimum(sigmas, sigma_max)
        out.update(sigmas=[*sigmas.tolist(), 0.0], clipped=clipped)
    return out
