"""Named (interpolant, schedule) pairs, as the command line and the studies name them.

| name          | interpolant noise ``c`` | schedule                                       |
|---------------|-------------------------|------------------------------------------------|
| ``vp``        | 1                       | constant ``tau = t``                           |
| ``ve``        | ``sqrt(d)``             | constant                                       |
| ``vp-dilated``| 1                       | :class:`~nsjax.schedules.DilatedVP` (kappa)    |
| ``ve-dilated``| ``sqrt(d)``             | :class:`~nsjax.schedules.DilatedVE` (kappa)    |
| ``ddpm``      | 1                       | :class:`~nsjax.schedules.DDPM`                 |
| ``vpsde``     | 1                       | :class:`~nsjax.schedules.VPSDE`                |
| ``cosine``    | 1                       | :class:`~nsjax.schedules.Cosine`               |
| ``vesde``     | ``sqrt(d)``             | :class:`~nsjax.schedules.VESDE`                |
| ``edm``       | ``sqrt(d)``             | :class:`~nsjax.schedules.EDM`                  |

``form="trig"`` selects the trig interpolant (and the trig variant of the dilated VE schedule).
"""

from __future__ import annotations

import math

from . import schedules
from ._checks import check_dim
from .interpolants import AbstractInterpolant, make_interpolant

__all__ = ["SCHEDULES", "SCHEDULE_KINDS", "PAPER_SCHEDULES", "STANDARD_SCHEDULES", "make_schedule", "preset"]

PAPER_SCHEDULES = ("vp", "ve", "vp-dilated", "ve-dilated")
STANDARD_SCHEDULES = ("ddpm", "vpsde", "cosine", "vesde", "edm")
SCHEDULES = PAPER_SCHEDULES + STANDARD_SCHEDULES
_VE = ("ve", "ve-dilated", "vesde", "edm")


def preset(
    name: str,
    dim: int,
    *,
    kappa: float = 3.0,
    form: str = "linear",
    sigma_max: float | None = None,
) -> tuple[AbstractInterpolant, schedules.AbstractSchedule]:
    """The interpolant and schedule called ``name`` at dimension ``dim``.

    ``sigma_max`` overrides the VE-SDE / EDM default (348 / 80).
    """
    dim = check_dim("dim", dim)
    if name not in SCHEDULES:
        raise ValueError(f"schedule must be one of {list(SCHEDULES)}, got {name!r}")
    c = math.sqrt(dim) if name in _VE else 1.0
    interpolant = make_interpolant(form, c)
    params = {} if sigma_max is None or name not in ("vesde", "edm") else {"sigma_max": float(sigma_max)}
    kind = "constant" if name in ("vp", "ve") else name
    return interpolant, make_schedule(kind, dim, noise_scale=c, kappa=kappa, form=form, **params)


SCHEDULE_KINDS = ("constant", "vp-dilated", "ve-dilated") + STANDARD_SCHEDULES


def make_schedule(
    kind: str,
    dim: int,
    *,
    noise_scale: float,
    kappa: float = 3.0,
    form: str = "linear",
    **params: float,
) -> schedules.AbstractSchedule:
    """The schedule ``kind`` (``SCHEDULE_KINDS``) alone, for an interpolant of noise scale
    ``noise_scale``; ``params`` override a standard schedule's defaults (e.g. ``sigma_max``,
    ``beta_start``, ``num_train_steps``)."""
    table = {
        "constant": lambda: schedules.Constant(),
        "vp-dilated": lambda: schedules.DilatedVP(kappa, dim),
        "ve-dilated": lambda: schedules.DilatedVE(kappa, dim, form=form),
        "ddpm": lambda: schedules.DDPM(noise_scale=noise_scale, **params),
        "vpsde": lambda: schedules.VPSDE(noise_scale=noise_scale, **params),
        "cosine": lambda: schedules.Cosine(noise_scale=noise_scale, **params),
        "vesde": lambda: schedules.VESDE(noise_scale=noise_scale, **params),
        "edm": lambda: schedules.EDM(noise_scale=noise_scale, **params),
    }
    if kind not in table:
        raise ValueError(f"schedule must be one of {sorted(table)}, got {kind!r}")
    if params and kind in ("constant", "vp-dilated", "ve-dilated"):
        raise ValueError(f"schedule {kind!r} takes no parameters {sorted(params)}")
    return table[kind]()
