"""Sums over the coordinates of a particle, written so that XLA fuses what feeds them."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from .._types import Array, Float

ROW = 32
"""Coordinates per partial sum: XLA:CPU rewrites a longer reduction into a tree of reduce-windows."""


def blocked(fn, t: Float[Array, " dim"], block: int) -> list[Float[Array, ""]]:
    """``fn`` (a list of scalar sums of a 2-D array) over ``t`` cut into rows of ``block``
    coordinates plus one row for the remainder, summed."""
    d = t.shape[-1]
    main = (d // block) * block
    parts = ([fn(t[:main].reshape(-1, block))] if main else []) + ([fn(t[main:][None])] if d - main else [])
    return [sum(values) for values in zip(*parts)]


def coordinate_sum(x: Float[Array, " dim"]) -> Float[Array, ""]:
    """``sum_i x_i``: sums of rows of :data:`ROW` coordinates, then the sum of those.

    XLA:CPU splits any reduction over more than 32 elements into a tree of reduce-windows, which
    do not fuse the elementwise computation that produces ``x``: ``x`` would be stored first and
    read back. A reduction over rows of 32 keeps its producer fused (one read of the producer's
    inputs, ``d / 32`` partial sums written); the ``optimization_barrier`` keeps XLA from merging
    the two sums back into one long reduction. Rounding: sequential within a row, XLA's pairwise
    tree across rows, as for ``jnp.sum``.
    """
    return blocked(lambda rows: [jnp.sum(jax.lax.optimization_barrier(jnp.sum(rows, axis=1)))], x, ROW)[0]
