"""Multi-device sampling (nsjax.sharding) on 4 simulated CPU devices.

``XLA_FLAGS=--xla_force_host_platform_device_count=4`` must be set before jax is imported, so the
checks run in a subprocess; each check compares against the one-device run in the same process.
"""

import os
import subprocess
import sys
import textwrap

import jax
import pytest

from nsjax.sharding import make_mesh

SCRIPT = textwrap.dedent(
    """
    import jax, jax.numpy as jnp, numpy as np
    jax.config.update("jax_enable_x64", True)
    import nsjax
    from nsjax import ensemble, solvers
    from nsjax.registry import preset
    from nsjax.solve import Save  # noqa: F401
    from nsjax.systems import Particles
    from nsjax.sharding import ShardedDim, ShardedSystem, make_mesh

    assert jax.device_count() == 4, jax.devices()
    key = jax.random.key(3)
    # 10 particles: not a multiple of 4 devices (padding); d = 301: not a multiple either;
    # d = 2053: two blocks of 1024 and a tail in the power-sum CW posterior.
    targets = (nsjax.GaussianMixture(dim=301), nsjax.CurieWeiss(dim=301, h=0.5),
               nsjax.CurieWeiss(dim=2053, h=0.5, series_min_dim=0))
    for target in targets:
        interp, sched = preset("ve-dilated", target.dim)
        kw = dict(steps=6, solver=solvers.make_solver("heun"), dtype=jnp.float64, keep_states=True,
                  chunk_size=2)
        one = ensemble.sample(target, interp, sched, key, 10, **kw)
        for layout in ("particles", "dim"):
            many = ensemble.sample(target, interp, sched, key, 10, sharding=layout, **kw)
            assert many.info["num_devices"] == 4 and many.info["sharding"] == layout
            # particles: same per-particle program; dim: sums reassociated across devices
            np.testing.assert_allclose(many.states, one.states, rtol=1e-12,
                                       atol=1e-12 * np.abs(one.states).max())
            for name, values in one.statistics.items():
                np.testing.assert_allclose(many.statistics[name], values, rtol=1e-12, atol=1e-14)
    # float32 (the default): adaptive steps with path summaries, and ReducedGM (scalar states:
    # only "particles" splits them); 6 particles on 4 devices. Adaptive step counts must match
    # exactly (batched programs throughout: the float32 step-size heuristic is rounding-sensitive
    # only unbatched, see test_chunking.py); values to float32 rounding through a 33-term sum
    # reassociated 4 ways (measured 1e-6 absolute on states of size ~1): 2e-5.
    gm = nsjax.GaussianMixture(dim=33)
    interp, sched = preset("ve-dilated", 33)
    reduced = nsjax.ReducedGM(nsjax.GaussianMixture(dim=10**6))
    runs = (
        (gm, (interp, sched), dict(steps=None, solver=solvers.make_solver("heun"), rtol=1e-3,
                                   atol=1e-5, path_ts=[0.5, 1.0], path_coords=2), 2e-5),
        (reduced, preset("ve-dilated", 10**6), dict(steps=3, path_ts=[1.0]), 2e-5),
    )
    for system, (interp, sched), kw, rtol in runs:
        one = ensemble.sample(system, interp, sched, key, 6, keep_states=True, **kw)
        for layout in ("particles",) if system is reduced else ("particles", "dim"):
            many = ensemble.sample(system, interp, sched, key, 6, sharding=layout,
                                   keep_states=True, **kw)
            assert many.info["num_devices"] == 4, many.info
            close = lambda a, b: np.testing.assert_allclose(  # noqa: E731
                a, b, rtol=rtol, atol=rtol * max(np.abs(b).max(), 1.0))
            jax.tree.map(close, many.states, one.states)
            assert jax.tree.leaves(many.states)[0].dtype == jnp.float32
            for name, values in one.statistics.items():
                close(many.statistics[name], values)
            np.testing.assert_array_equal(many.num_steps, one.num_steps)
            np.testing.assert_array_equal(many.nfe, one.nfe)
            for name, values in one.path.items():
                close(many.path[name], values)
    # dim layout really splits the state: the compiled program holds 76-wide shards and
    # cross-device all-reduces for r.x
    gm = nsjax.GaussianMixture(dim=301)
    interp, sched = preset("ve-dilated", 301)
    config = ensemble._Config(steps=4, solver=solvers.make_solver("euler"), save=None,
                              keep_states=False, max_steps=100, dtype=jnp.dtype(jnp.float64))
    system = ShardedSystem(Particles(gm), ShardedDim(make_mesh("dim")))
    keys = jax.random.split(key, 4)
    hlo = jax.jit(lambda k: ensemble._run(system, interp, sched, k, config, 2)).lower(keys)
    text = hlo.compile().as_text()
    assert "all-reduce" in text and "f64[2,76]" in text, "state not split over devices"
    # the command line: --sharding reaches the sampler
    import contextlib, io, json
    from nsjax.cli import main
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["sample", "--d", "64", "--particles", "6", "--steps", "3",
                     "--sharding", "particles"]) == 0
    report = json.loads(out.getvalue())
    assert report["num_devices"] == 4 and report["sharding"] == "particles", report
    print("OK")
    """
)


def test_sharded_runs_equal_one_device():
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4",
               JAX_PLATFORMS="cpu")
    proc = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True,
                          timeout=900)  # ~60 s idle; a loaded 2-core machine took > 300 s
    assert proc.returncode == 0 and "OK" in proc.stdout, proc.stdout + proc.stderr


def test_invalid_layout_names_the_parameter():
    with pytest.raises(ValueError, match="sharding must be one of"):
        make_mesh("rows")
    with pytest.raises(ValueError, match="devices"):
        make_mesh("particles", devices=[])
    assert make_mesh("dim", jax.devices()[:1]).axis_names == ("dim",)
