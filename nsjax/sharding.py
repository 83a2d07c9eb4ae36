"""Multi-device ensembles: the particle axis, or each particle's dimension axis, across devices.

Two layouts, selected by ``sample(..., sharding=...)``:

- ``"particles"``: the ensemble is split into equal blocks, one per device (``jax.shard_map`` over
  a 1-D mesh named ``"particles"``); every device runs the single-device program (the same
  chunked ``lax.map``) on its block. Particle ``b`` still uses key ``b``, so results equal the
  one-device run. Blocks are padded to equal size with copies of the last keys, then dropped.
- ``"dim"``: every particle's state ``x`` (shape ``(d,)``) is split across devices (a 1-D mesh named
  ``"dim"``; GSPMD via sharding constraints on the state). Elementwise work stays local; the
  target's reductions (GM ``r.x``, CW saddle sums) become cross-device all-reduces inserted by
  XLA. For particles too large for one device; sums are reassociated, so results equal the
  one-device run to rounding.

Multi-host: call ``jax.distributed.initialize()`` on every process first; ``jax.devices()`` then
lists all hosts' devices and both layouts span them (see ``benchmarks/SHARDING.md``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from .systems import AbstractSystem

__all__ = ["LAYOUTS", "make_mesh", "ShardedDim", "ShardedSystem", "run_particle_sharded"]

LAYOUTS = ("particles", "dim")


def make_mesh(layout: Literal["particles", "dim"], devices: Sequence[Any] | None = None) -> Mesh:
    """A 1-D mesh over ``devices`` (default: all devices, every host) with axis name ``layout``."""
    if layout not in LAYOUTS:
        raise ValueError(f"sharding must be one of {LAYOUTS} or None, got {layout!r}")
    devices = jax.devices() if devices is None else list(devices)
    if not devices:
        raise ValueError("devices must be a non-empty sequence of jax devices")
    return Mesh(np.asarray(devices), (layout,))


def run_particle_sharded(
    run_block: Callable[[Any], Any], keys: Any, mesh: Mesh
) -> Any:
    """``run_block`` (keys of one block -> per-particle outputs, leading axis) over ``mesh``.

    Pads ``keys`` to a multiple of the device count, shards the leading axis, and returns the
    outputs of the first ``len(keys)`` particles.
    """
    num = keys.shape[0]
    devices = mesh.size
    pad = (-num) % devices
    if pad:
        keys = jnp.concatenate([keys, jnp.repeat(keys[-1:], pad, axis=0)], axis=0)
    spec = PartitionSpec(mesh.axis_names[0])
    keys = jax.device_put(keys, NamedSharding(mesh, spec))
    mapped = jax.shard_map(run_block, mesh=mesh, in_specs=spec, out_specs=spec, check_vma=False)
    out = mapped(keys)
    return jax.tree.map(lambda leaf: leaf[:num], out)


class ShardedDim(eqx.Module):
    """Constrains a particle state ``(d,)`` to be split over the ``"dim"`` axis of ``mesh``."""

    mesh: Mesh = eqx.field(static=True)

    def __call__(self, state: Any) -> Any:
        sharding = NamedSharding(self.mesh, PartitionSpec(self.mesh.axis_names[0]))
        return jax.tree.map(
            lambda leaf: jax.lax.with_sharding_constraint(leaf, sharding) if leaf.ndim else leaf,
            state,
        )


class ShardedSystem(AbstractSystem):
    """A system whose states are split over the ``"dim"`` mesh axis (``sharding="dim"``)."""

    system: AbstractSystem
    constrain: ShardedDim

    def init(self, key, scale, dtype):
        return self.constrain(self.system.init(key, scale, dtype))

    def velocity(self, interpolant, tau, tau_c, state):
        return self.constrain(self.system.velocity(interpolant, tau, tau_c, self.constrain(state)))

    def denoise(self, interpolant, tau, tau_c, state):
        return self.constrain(self.system.denoise(interpolant, tau, tau_c, state))

    def statistics(self, state):
        return self.system.statistics(state)

    def summary(self, state, num_coords):
        return self.system.summary(state, num_coords)

    def bytes_per_particle(self, itemsize, stages):
        """Per device: the state is split ``mesh.size`` ways."""
        return -(-self.system.bytes_per_particle(itemsize, stages) // self.constrain.mesh.size)
