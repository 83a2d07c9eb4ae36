"""flax_celeba's ODE sampler takes nsjax's exponential and multistep solvers by name (issue 13):
a GM written as a score network, through ``probability_flow``, equals nsjax's engine run with
the same solver on the same noise."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flax_celeba.cli import build_parser
from flax_celeba.denoisers import ve_denoiser
from flax_celeba.gm import gm_network
from flax_celeba.samplers import probability_flow
from nsjax import sample as engine_sample
from nsjax.interpolants import Linear
from nsjax.schedules import DilatedVP
from nsjax.solvers import make_solver
from nsjax.targets.gaussian_mixture import GaussianMixture

NUM, IMAGE, DIM = 32, (3, 8, 8), 192


@pytest.mark.parametrize("solver", ["unipc"])
def test_exponential_solver_by_name(solver):
    with jax.enable_x64(True):
        target = GaussianMixture(dim=DIM, p=0.8, sigma2=0.25)
        interpolant, schedule = Linear(1.0), DilatedVP(3.0, DIM)
        key = jax.random.PRNGKey(0)
        ref = engine_sample(target, interpolant, schedule, key, NUM, steps=12,
                            solver=make_solver(solver), keep_states=True, dtype=jnp.float64)
        keys = jax.random.split(key, NUM)
        z = jax.vmap(lambda k: jax.random.normal(k, (DIM,), jnp.float64))(keys).reshape(NUM, *IMAGE)
        denoiser = ve_denoiser(gm_network(target, "score"), 1e-9, 1e9)
        got = probability_flow(denoiser, schedule, interpolant, 12, z, solver=solver)
        ref = np.asarray(ref.states).reshape(NUM, *IMAGE)
        assert float(np.abs(np.asarray(got) - ref).max()) < 1e-5


def test_cli_solver_choices():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    choices = [a.choices for p in sub.choices.values() for a in p._actions if a.dest == "solver"]
    assert choices and all(c is not None and "dpmpp-2m" in c and "unipc" in c for c in choices)


LEARNED = "file:" + str(__import__("pathlib").Path(__file__).resolve().parents[2]
                        / "benchmarks/results/learned/{}.json")


def test_schedule_file_drives_the_image_sampler_like_the_engine():
    """Issue 11: a learned schedule file (``ode:file:F.json``) in flax_celeba's sampler equals the
    engine run of the same file on the same noise (GM written as a score network); a VE file
    under the VP interpolant is refused, naming the noise."""
    from types import SimpleNamespace

    from flax_celeba.pipeline import make_schedule
    from nsjax import preset

    path = LEARNED.format("vp_heun6")
    model = SimpleNamespace(dim=DIM, scheduler=None)
    with jax.enable_x64(True):
        target = GaussianMixture(dim=DIM, p=0.8, sigma2=0.25)
        interpolant, schedule = preset(path, DIM)
        key = jax.random.PRNGKey(0)
        ref = engine_sample(target, interpolant, schedule, key, NUM, steps=6,
                            solver=make_solver("heun"), keep_states=True, dtype=jnp.float64)
        keys = jax.random.split(key, NUM)
        z = jax.vmap(lambda k: jax.random.normal(k, (DIM,), jnp.float64))(keys).reshape(NUM, *IMAGE)
        denoiser = ve_denoiser(gm_network(target, "score"), 1e-9, 1e9)
        ours = make_schedule(path, model, 1.0)
        got = probability_flow(denoiser, ours, interpolant, 6, z, solver="heun")
        assert float(np.abs(np.asarray(got) - np.asarray(ref.states).reshape(NUM, *IMAGE)).max()) < 1e-5
    with pytest.raises(ValueError, match="ve noise"):
        make_schedule(LEARNED.format("ve_unipc12"), model, 1.0)
