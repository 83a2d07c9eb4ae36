"""The one registry of schedule names, their noise-scale rule and parameters, and the presets.

Every command line (``nsjax``, ``flax-celeba``), ``nsjax reproduce`` and the sweeps read schedule
names here; nothing else keeps a list of them.

Noise scale (docs/theory.md §1): **VP** ``c = 1``, **VE** ``c = sqrt(d)`` (:func:`noise_scale`).

Schedules (``SCHEDULES``; aliases in brackets, for flax_celeba's older names):

| name | built for | parameters | class |
|---|---|---|---|
| ``constant`` | any ``c`` | — | :class:`~nsjax.schedules.Constant` |
| ``vp-dilated`` (``dilated_vp``) | VP | ``kappa`` | :class:`~nsjax.schedules.DilatedVP` |
| ``ve-dilated`` (``dilated_ve``) | VE | ``kappa``, ``form`` | :class:`~nsjax.schedules.DilatedVE` |
| ``ddpm`` | VP | ``num_train_steps``, ``beta_start``, ``beta_end`` | :class:`~nsjax.schedules.DDPM` |
| ``vpsde`` | VP | ``beta_min``, ``beta_max``, ``eps`` | :class:`~nsjax.schedules.VPSDE` |
| ``cosine`` | VP | ``offset``, ``eps`` | :class:`~nsjax.schedules.Cosine` |
| ``vesde`` | VE | ``sigma_min``, ``sigma_max``, ``eps`` | :class:`~nsjax.schedules.VESDE` |
| ``edm`` | VE | ``sigma_min``, ``sigma_max``, ``rho`` | :class:`~nsjax.schedules.EDM` |

Presets (``PRESETS``) pair a schedule with the interpolant of its noise: ``vp`` and ``ve`` are
the constant schedule with VP and VE noise, every other preset is its schedule's name.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from . import schedules
from ._checks import check_dim, check_range
from .interpolants import AbstractInterpolant, make_interpolant

__all__ = [
    "NOISES",
    "PRESETS",
    "SCHEDULES",
    "PAPER_SCHEDULES",
    "STANDARD_SCHEDULES",
    "Preset",
    "ScheduleEntry",
    "make_schedule",
    "noise_scale",
    "preset",
    "resolve",
    "select",
]

Noise = Literal["vp", "ve"]
NOISES: tuple[str, ...] = ("vp", "ve")


def noise_scale(noise: str, dim: Any) -> Any:
    """The interpolant noise scale ``c``: 1 for ``"vp"``, ``sqrt(d)`` for ``"ve"`` (``dim`` may
    be traced)."""
    if noise == "vp":
        return 1.0
    if noise == "ve":
        return math.sqrt(dim) if isinstance(dim, (int, float)) else dim**0.5
    raise ValueError(f"noise must be one of {NOISES}, got {noise!r}")


@dataclass(frozen=True)
class ScheduleEntry:
    """One schedule name: its native noise, accepted parameters, factory and aliases."""

    name: str
    noise: Literal["vp", "ve", "any"]
    params: tuple[str, ...]
    factory: Callable[..., schedules.AbstractSchedule]
    """``factory(dim, noise_scale, **params)``."""
    aliases: tuple[str, ...] = ()


def _process(cls):
    return lambda dim, c, **params: cls(noise_scale=c, **params)


_ENTRIES = (
    ScheduleEntry("constant", "any", (), lambda dim, c: schedules.Constant()),
    ScheduleEntry(
        "vp-dilated", "vp", ("kappa",),
        lambda dim, c, kappa=3.0: schedules.DilatedVP(kappa, dim), ("dilated_vp",),
    ),
    ScheduleEntry(
        "ve-dilated", "ve", ("kappa", "form"),
        lambda dim, c, kappa=3.0, form="linear": schedules.DilatedVE(kappa, dim, form=form),
        ("dilated_ve",),
    ),
    ScheduleEntry("ddpm", "vp", ("num_train_steps", "beta_start", "beta_end"), _process(schedules.DDPM)),
    ScheduleEntry("vpsde", "vp", ("beta_min", "beta_max", "eps"), _process(schedules.VPSDE)),
    ScheduleEntry("cosine", "vp", ("offset", "eps"), _process(schedules.Cosine)),
    ScheduleEntry("vesde", "ve", ("sigma_min", "sigma_max", "eps"), _process(schedules.VESDE)),
    ScheduleEntry("edm", "ve", ("sigma_min", "sigma_max", "rho"), _process(schedules.EDM)),
)
SCHEDULES: dict[str, ScheduleEntry] = {entry.name: entry for entry in _ENTRIES}
_ALIASES = {alias: entry.name for entry in _ENTRIES for alias in entry.aliases}

PRESETS: dict[str, tuple[str, Noise]] = {
    "vp": ("constant", "vp"),
    "ve": ("constant", "ve"),
    **{e.name: (e.name, e.noise) for e in _ENTRIES if e.noise != "any"},
}
"""Preset name -> (schedule name, noise)."""
PAPER_SCHEDULES = ("vp", "ve", "vp-dilated", "ve-dilated")
STANDARD_SCHEDULES = ("ddpm", "vpsde", "cosine", "vesde", "edm")


def _file_entry(name: str) -> ScheduleEntry:
    """The entry of a schedule file ``file:PATH`` (:mod:`nsjax.schedule_files`): its noise is the
    file's, its only parameter the dimension."""
    from .schedule_files import load_schedule, read_schedule

    record = read_schedule(name)

    def factory(dim, c):
        # the file's noise fixes c: 1 (VP) or sqrt(d) (VE); a concrete mismatch is an error
        want = 1.0 if record["noise"] == "vp" else math.sqrt(float(dim)) if _concrete(dim) else None
        if want is not None and _concrete(c) and not math.isclose(float(c), want, rel_tol=1e-6):
            raise ValueError(
                f"schedule file {name[5:]!r} is for {record['noise']} noise (noise_scale {want:g}), "
                f"got noise_scale {float(c):g}: use the {record['noise'].upper()} interpolant"
            )
        return load_schedule(name, dim)

    return ScheduleEntry(name, record["noise"], (), factory)


def _concrete(value: Any) -> bool:
    return not isinstance(value, jax.core.Tracer) and value is not None


def resolve(name: str) -> ScheduleEntry:
    """The registry entry of a schedule name or alias, or of a schedule file ``file:PATH``."""
    if isinstance(name, str) and name.startswith("file:"):
        return _file_entry(name)
    entry = SCHEDULES.get(_ALIASES.get(name, name)) if isinstance(name, str) else None
    if entry is None:
        raise ValueError(f"schedule name must be one of {sorted(SCHEDULES)}, got {name!r}")
    return entry


def make_schedule(
    name: str, dim: Any, *, noise_scale: Any, **params: Any
) -> schedules.AbstractSchedule:
    """The schedule ``name`` (or alias) for dimension ``dim`` and interpolant noise scale
    ``noise_scale``; ``params`` are the entry's parameters (``None`` values mean the default)."""
    entry = resolve(name)
    params = {k: v for k, v in params.items() if v is not None}
    unknown = sorted(set(params) - set(entry.params))
    if unknown:
        raise ValueError(
            f"parameters {unknown} are not accepted by schedule {entry.name!r}: its parameters are "
            + (f"one of {list(entry.params)}" if entry.params else "none (allowed: one of [])")
        )
    return entry.factory(dim, noise_scale, **params)


class Preset(eqx.Module):
    """An interpolant and a schedule that agree on the noise scale; unpacks as a pair."""

    interpolant: AbstractInterpolant
    schedule: schedules.AbstractSchedule

    def __check_init__(self):
        self.schedule.check_noise_scale(self.interpolant.noise_scale)

    def __iter__(self) -> Iterator[Any]:
        return iter((self.interpolant, self.schedule))


def preset(
    name: str,
    dim: int,
    *,
    kappa: float = 3.0,
    form: str = "linear",
    sigma_max: float | None = None,
    **params: Any,
) -> Preset:
    """The interpolant and schedule called ``name`` (``PRESETS``, or ``file:PATH``: a schedule
    file of :mod:`nsjax.schedule_files`, with its own noise) at dimension ``dim``.

    ``form`` selects the linear or trig interpolant (and the matching dilated VE schedule);
    ``kappa`` applies to the dilated schedules, ``sigma_max`` to VE-SDE / EDM (default 348 / 80),
    ``params`` to any schedule's own parameters.
    """
    if isinstance(name, str) and name.startswith("file:"):
        dim = check_dim("dim", dim)
        entry = resolve(name)
        c = noise_scale(entry.noise, dim)
        return Preset(make_interpolant(form, c), entry.factory(dim, c))
    if not isinstance(name, str) or name not in PRESETS:
        raise ValueError(
            f"preset name must be one of {list(PRESETS)} or file:PATH (a schedule file), got {name!r}"
        )
    dim = check_dim("dim", dim)
    schedule_name, noise = PRESETS[name]
    c = noise_scale(noise, dim)
    entry = SCHEDULES[schedule_name]
    chosen = {"kappa": kappa, "form": form, "sigma_max": sigma_max, **params}
    chosen = {k: v for k, v in chosen.items() if k in entry.params or k in params}
    return Preset(make_interpolant(form, c), make_schedule(schedule_name, dim, noise_scale=c, **chosen))


def select(
    names: Sequence[str], index: Any, dim: Any, *, form: str = "linear", **params: Any
) -> Preset:
    """The presets ``names`` as one pytree that runs ``names[index]``: ``index``, ``dim`` and the
    numeric ``params`` (``kappa``, ``sigma_max``, ...) may all be traced, so that one compiled
    sweep covers several schedules and dimensions (:mod:`nsjax.sweeps`).

    The schedules are joined by :class:`~nsjax.schedules.Selected` (they must share their
    breakpoints; the constant schedule takes the others' so that it can join the two-phase
    dilations) and the interpolant's noise scale is chosen with them.
    """
    if isinstance(names, str) or not names:
        raise ValueError(
            f"names must be a non-empty list of preset names, one of {list(PRESETS)}, got {names!r}"
        )
    unknown = [n for n in names if not isinstance(n, str) or n not in PRESETS]
    if unknown:
        raise ValueError(f"names must be preset names, one of {list(PRESETS)}, got {unknown}")
    if not isinstance(index, jax.core.Tracer):
        allowed = f"an integer in [0, {len(names) - 1}] (an index into names)"
        if isinstance(index, (str, bytes, bool)) or index is None or np.ndim(index) != 0:
            raise TypeError(f"index must be {allowed}, got {index!r}")
        if not float(index).is_integer() or not 0 <= index < len(names):
            raise ValueError(f"index must be {allowed}, got {index!r}")
    if not isinstance(dim, jax.core.Tracer):
        if eqx.is_array(dim):
            check_range("dim", dim, 1.0, None, low_open=False)
        else:
            check_dim("dim", dim)
    scales = [noise_scale(PRESETS[n][1], dim) for n in names]
    c = jnp.choose(jnp.asarray(index).astype(jnp.int32), [jnp.asarray(v) for v in scales], mode="clip")
    built = []
    for name in names:
        entry = SCHEDULES[PRESETS[name][0]]
        chosen = {"form": form, **params}
        built.append(make_schedule(entry.name, dim, noise_scale=c, **{
            k: v for k, v in chosen.items() if k in entry.params
        }))
    breaks = {s.breakpoints for s in built if not isinstance(s, schedules.Constant)}
    if len(breaks) == 1:
        (shared,) = breaks
        built = [schedules.Constant(breaks=shared) if isinstance(s, schedules.Constant) else s for s in built]
    return Preset(make_interpolant(form, c), schedules.Selected(tuple(built), index))
