"""Cost and identities of the exponential/multistep solvers (nsjax.exponential; docs/theory.md §7).

- the compiled step loop of every multistep solver copies no state-sized array (its history is a
  ring written in place: a shifted history cost a copy per stored value and step, 6-9x Euler);
- DDIM is Euler in tau for the linear interpolant: on a schedule linear in t within each piece
  (the dilated ones) the two agree step for step, to rounding.
"""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nsjax.compilation import xla_options
from nsjax.registry import preset
from nsjax.solve import solve
from nsjax.solvers import make_solver
from nsjax.targets import GaussianMixture

D = 1031  # a prime: state-sized shapes are recognisable in the HLO text
B = 3


def _loop_bodies(hlo: str) -> list[str]:
    """The text of every computation used as a while-loop body."""
    names = set(re.findall(r"body=%?([\w.\-]+)", hlo))
    bodies = []
    for block in hlo.split("\n\n"):
        header = block.lstrip().split(" ", 1)[0].lstrip("%")
        if header in names:
            bodies.append(block)
    return bodies


@pytest.mark.parametrize("name", ["dpmpp-2m", "unipc"])  # the shared ring; UniPC also carries a state
def test_step_loop_copies_no_state(name):
    """No ``copy`` of a state-sized float buffer (a dimension ``D`` in its shape; the noise
    generator's integer loop aside) in any while-loop body
    of the compiled, vmapped solve (the engine's compile options). Fails with a history shifted
    by one tuple slot per step (XLA copies every stored value on every step)."""
    interpolant, schedule = preset("ve-dilated", D)
    target, solver = GaussianMixture(dim=D, p=0.8, sigma2=0.25), make_solver(name)

    def run(keys):
        return jax.vmap(lambda k: solve(target, interpolant, schedule, key=k, steps=8, solver=solver).state)(keys)

    keys = jax.random.split(jax.random.key(0), B)
    hlo = jax.jit(run, compiler_options=xla_options()).lower(keys).compile().as_text()
    bodies = _loop_bodies(hlo)
    assert bodies, "no while loop found in the compiled solve"
    copies = [line.strip()[:160] for body in bodies for line in body.splitlines()
              if " copy(" in line and re.search(rf"f\d+\[[\d,]*\b{D}\b[\d,]*\]", line.split("=", 1)[1].split(" copy(")[0])]
    assert not copies, copies


@pytest.mark.x64
def test_ddim_is_euler_in_tau_for_the_linear_interpolant():
    """Linear interpolant, ``a = tau``, ``s = c (1 - tau)``: the DDIM step
    ``x_t = (s_t/s_u) x_u + (a_t - a_u s_t/s_u) eta_u`` equals Euler in tau,
    ``x_t = x_u + (tau_t - tau_u)(eta_u - x_u)/(1 - tau_u)``; the dilated schedules are linear in
    ``t`` within each piece, so Euler in ``t`` takes the same steps. Float64, d = 1e3, 10 steps,
    both with the final step to tau = 1; tolerance 1e-10 relative to the state's scale
    (rounding of ~10 steps on states of size ``c = sqrt(d)``)."""
    d = 1000
    interpolant, schedule = preset("ve-dilated", d)  # c = sqrt(d): both scales enter
    target = GaussianMixture(dim=d, p=0.8, sigma2=0.25)
    key = jax.random.key(1)
    out = {  # float64 is enabled in tests/conftest.py
        name: np.asarray(solve(target, interpolant, schedule, key=key, steps=10, solver=make_solver(name),
                               dtype=jnp.float64).state)
        for name in ("euler", "ddim")
    }
    scale = max(1.0, float(interpolant.noise_scale))
    np.testing.assert_allclose(out["ddim"], out["euler"], rtol=0, atol=1e-10 * scale)
