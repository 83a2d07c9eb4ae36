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

__all__ = ["SCHEDULES", "PAPER_SCHEDULES", "STANDARD_SCHEDULES", "preset"]

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
    extra = {} if sigma_max is None else {"sigma_max": float(sigma_max)}
    table = {
        "vp": lambda: schedules.Constant(),
        "ve": lambda: schedules.Constant(),
        "vp-dilated": lambda: schedules.DilatedVP(kappa, dim),
        "ve-dilated": lambda: schedules.DilatedVE(kappa, dim, form=form),
        "ddpm": lambda: schedules.DDPM(noise_scale=c),
        "vpsde": lambda: schedules.VPSDE(noise_scale=c),
        "cosine": lambda: schedules.Cosine(noise_scale=c),
        "vesde": lambda: schedules.VESDE(noise_scale=c, **extra),
        "edm": lambda: schedules.EDM(noise_scale=c, **extra),
    }
    return interpolant, table[name]()
