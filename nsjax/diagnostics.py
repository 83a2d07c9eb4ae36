"""Diagnostics of a run: memory (estimate, peak RSS, device peaks) and XLA's byte count of a step.

Measurement helpers for :func:`nsjax.sample`'s report and ``benchmarks/``; nothing here changes
what is computed.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from .compilation import xla_options
from .interpolants import AbstractInterpolant
from .schedules import AbstractSchedule
from .solve import piece_term
from .systems import Particles
from .targets.base import AbstractTarget

__all__ = ["memory_report", "peak_rss_bytes", "step_bytes_per_coordinate"]


def peak_rss_bytes() -> int:
    """The process' resident-set high-water mark.

    Linux: ``VmHWM`` of ``/proc/self/status`` (this address space only: ``ru_maxrss`` survives
    ``execve``, so a child of a large parent would report the parent's peak); elsewhere
    ``ru_maxrss``.
    """
    import resource
    import sys

    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(rss if sys.platform == "darwin" else rss * 1024)


def memory_report(estimated_bytes_per_device: int) -> dict[str, Any]:
    """The estimate, the process' peak RSS and each device's peak bytes (where reported)."""
    report: dict[str, Any] = {
        "estimated_bytes_per_device": int(estimated_bytes_per_device),
        "peak_rss_bytes": peak_rss_bytes(),
        "device_peak_bytes": None,
    }
    peaks = []
    for device in jax.local_devices():
        stats = device.memory_stats() if hasattr(device, "memory_stats") else None
        if stats and "peak_bytes_in_use" in stats:
            peaks.append(int(stats["peak_bytes_in_use"]))
    if peaks:
        report["device_peak_bytes"] = max(peaks)
    return report


def step_bytes_per_coordinate(
    target: AbstractTarget, interpolant: AbstractInterpolant, schedule: AbstractSchedule, solver,
    particles: int = 8, t: float = 0.1,
) -> float:
    """XLA's count (``cost_analysis``) of the bytes one compiled step accesses, per coordinate of
    ``particles`` float32 particles, with the engine's compile options (:func:`xla_options`): what
    a step reads and writes, stage states stored or not (``benchmarks/throughput.py``)."""
    term = piece_term(Particles(target), interpolant, schedule, 0)
    t0, t1 = jnp.float32(t), jnp.float32(t + 0.01)  # the engine's times are in the state's dtype

    def step(y0):
        state = solver.init(term, t0, t1, y0, None)
        return solver.step(term, t0, t1, y0, None, state, False)[0]

    compiled = jax.jit(jax.vmap(step), compiler_options=xla_options())
    compiled = compiled.lower(jnp.ones((particles, target.dim), jnp.float32)).compile()
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost  # a list in older jaxlibs
    return cost["bytes accessed"] / (particles * target.dim)
