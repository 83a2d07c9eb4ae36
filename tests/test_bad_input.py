"""Bad input through the Python API: every public constructor and entry point, given NaN, inf,
negative, zero, out-of-range, wrong-shape or wrong-type values, raises ``ValueError`` or
``TypeError`` from nsjax's own code, with a message that names the parameter (as a word) and
states its allowed range or values.

The command-line equivalents are in ``tests/test_cli.py`` (exit status 2 naming the option).
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import nsjax
from nsjax import features, registry, sweeps
from nsjax.interpolants import Custom, Linear, Trig, make_interpolant, ve, vp
from nsjax.schedules import DDPM, EDM, VESDE, VPSDE, Constant, Cosine, DilatedVE, DilatedVP
from nsjax.solve import PieceSteps, Save, solve
from nsjax.targets import CurieWeiss, GaussianMixture, KModeMixture

NSJAX_DIR = Path(nsjax.__file__).resolve().parent
NAN, INF = math.nan, math.inf
KEY = jax.random.key(0)

RANGE = re.compile(
    r"[(\[][^()\[\]]*,[^()\[\]]*[)\]]"  # an interval (0, 1), [0, 1], (0.01, inf)
    r"|[<>]=?\s*-?[\w.]+"  # >= 1, > 0, <= d
    r"|\bone of\b|\bshape\b|\bor\b|\binteger\b|\bsum to\b|\bmust contain\b|\bincreas"
)


def _gm(**kw):
    return GaussianMixture(**{"dim": 4, **kw})


def _sample(**kw):
    args = {"target": _gm(), "interpolant": Linear(), "schedule": Constant(), "key": KEY,
            "num_particles": 2, "steps": 2}
    args.update(kw)
    return nsjax.sample(**args)


def _solve(**kw):
    args = {"system": _gm(), "interpolant": Linear(), "schedule": Constant(), "key": KEY, "steps": 2}
    args.update(kw)
    return solve(**args)


def _build(point):
    return GaussianMixture(4, 0.8), Linear(), Constant()


def _sweep(**kw):
    args = {"build": _build, "params": {"kappa": [1.0, 2.0]}, "noise": jax.random.split(KEY, 2),
            "steps": [2], "dtype": jnp.float32}
    args.update(kw)
    return sweeps.sweep(**args)


GOOD_STATS = {"overlap": np.array([0.5, -0.2, 0.9]), "sq_dev": np.array([0.2, 0.3, 0.25])}


def _estimate(stats=GOOD_STATS, target=None):
    return features.estimate(_gm() if target is None else target, stats)


def _dilated_vp(**kw):
    return DilatedVP(**{"kappa": 3.0, "dim": 100, **kw})


def _dilated_ve(**kw):
    return DilatedVE(**{"kappa": 3.0, "dim": 100, **kw})


# (id, callable, kwargs, parameter named in the message)
CASES = [
    # -- GaussianMixture ------------------------------------------------------------------------
    *[(f"gm-dim={v!r}", _gm, {"dim": v}, "dim") for v in (0, -3, 2.5, NAN, INF, "4", None, True)],
    *[(f"gm-p={v!r}", _gm, {"p": v}, "p") for v in (NAN, INF, -0.1, 0.0, 1.0, 1.5, "a", None)],
    ("gm-p-shape", _gm, {"p": np.array([0.5, 0.6])}, "p"),
    *[(f"gm-sigma2={v!r}", _gm, {"sigma2": v}, "sigma2") for v in (NAN, INF, -1.0, 0.0, "a")],
    ("gm-sigma2-shape", _gm, {"sigma2": np.ones((2, 2))}, "sigma2"),
    ("gm-direction-shape", _gm, {"direction": np.ones(5)}, "direction"),
    ("gm-direction-2d", _gm, {"direction": np.ones((4, 1))}, "direction"),
    ("gm-direction-nan", _gm, {"direction": np.array([1.0, NAN, 1.0, 1.0])}, "direction"),
    ("gm-direction-zero", _gm, {"direction": np.zeros(4)}, "direction"),
    # -- KModeMixture ---------------------------------------------------------------------------
    *[(f"km-dim={v!r}", KModeMixture, {"dim": v}, "dim") for v in (0, -1, 2.5, NAN, "6", 2)],
    ("km-weights-sum", KModeMixture, {"dim": 6, "weights": (0.5, 0.3, 0.3)}, "weights"),
    ("km-weights-neg", KModeMixture, {"dim": 6, "weights": (1.2, -0.4, 0.2)}, "weights"),
    ("km-weights-nan", KModeMixture, {"dim": 6, "weights": (NAN, 0.5, 0.5)}, "weights"),
    ("km-weights-empty", KModeMixture, {"dim": 6, "weights": ()}, "weights"),
    ("km-weights-2d", KModeMixture, {"dim": 6, "weights": [[0.5, 0.5]]}, "weights"),
    ("km-weights-str", KModeMixture, {"dim": 6, "weights": "abc"}, "weights"),
    ("km-weights-none", KModeMixture, {"dim": 6, "weights": None}, "weights"),
    ("km-variances-shape", KModeMixture, {"dim": 6, "variances": (1.0, 1.0)}, "variances"),
    ("km-variances-zero", KModeMixture, {"dim": 6, "variances": (0.0, 1.0, 1.0)}, "variances"),
    ("km-variances-inf", KModeMixture, {"dim": 6, "variances": (INF, 1.0, 1.0)}, "variances"),
    ("km-variances-str", KModeMixture, {"dim": 6, "variances": ("a", "b", "c")}, "variances"),
    ("km-amplitudes-neg", KModeMixture, {"dim": 6, "amplitudes": (-1.0, 1.0, 1.0)}, "amplitudes"),
    ("km-amplitudes-nan", KModeMixture, {"dim": 6, "amplitudes": (1.0, NAN, 1.0)}, "amplitudes"),
    ("km-directions-shape", KModeMixture, {"dim": 6, "directions": np.eye(3)}, "directions"),
    ("km-directions-gram", KModeMixture, {"dim": 3, "directions": np.ones((3, 3))}, "directions"),
    ("km-directions-nan", KModeMixture, {"dim": 3, "directions": np.full((3, 3), NAN)}, "directions"),
    # -- CurieWeiss (what already works; the gaps are listed in the report) -----------------------
    *[(f"cw-dim={v!r}", CurieWeiss, {"dim": v}, "dim") for v in (0, -2, 2.5, NAN)],
    *[(f"cw-theta={v!r}", CurieWeiss, {"dim": 8, "theta": v}, "theta") for v in (0.0, -1.0, NAN, INF)],
    *[(f"cw-h={v!r}", CurieWeiss, {"dim": 8, "h": v}, "h") for v in (NAN, INF, -INF)],
    ("cw-posterior", CurieWeiss, {"dim": 8, "posterior": "magic"}, "posterior"),
    ("cw-two-saddle-theta", CurieWeiss, {"dim": 8, "theta": 0.5, "posterior": "two-saddle"}, "theta"),
    ("cw-nodes", CurieWeiss, {"dim": 8, "nodes": 0}, "nodes"),
    ("cw-series_terms", CurieWeiss, {"dim": 8, "series_terms": -1}, "series_terms"),
    ("cw-max_passes", CurieWeiss, {"dim": 8, "max_passes": 0}, "max_passes"),
    ("cw-series_tol", CurieWeiss, {"dim": 8, "series_tol": 0.0}, "series_tol"),
    # -- interpolants ---------------------------------------------------------------------------
    *[(f"linear-c={v!r}", Linear, {"noise_scale": v}, "noise_scale") for v in (0.0, -1.0, NAN, INF, "a")],
    ("linear-c-shape", Linear, {"noise_scale": np.ones(2)}, "noise_scale"),
    *[(f"trig-c={v!r}", Trig, {"noise_scale": v}, "noise_scale") for v in (0.0, -1.0, NAN, INF, None)],
    ("custom-c", Custom, {"alpha_fn": jnp.cos, "beta_fn": jnp.sin, "noise_scale": -1.0}, "noise_scale"),
    ("custom-alpha_fn", Custom, {"alpha_fn": 1.0, "beta_fn": jnp.sin}, "alpha_fn"),
    ("vp-form", vp, {"form": "cubic"}, "form"),
    ("vp-form-type", vp, {"form": ["linear"]}, "form"),
    *[(f"ve-dim={v!r}", ve, {"dim": v}, "dim") for v in (0, -4, 2.5, NAN, INF, "9")],
    ("ve-form", ve, {"dim": 9, "form": "cubic"}, "form"),
    ("make_interpolant-form", make_interpolant, {"form": "cubic", "noise_scale": 1.0}, "form"),
    ("make_interpolant-form-none", make_interpolant, {"form": None, "noise_scale": 1.0}, "form"),
    *[(f"make_interpolant-c={v!r}", make_interpolant, {"form": "trig", "noise_scale": v}, "noise_scale")
      for v in (0.0, -2.0, NAN, INF, "a", None)],
    # -- schedules ------------------------------------------------------------------------------
    ("constant-breaks-range", Constant, {"breaks": (1.5,)}, "breaks"),
    ("constant-breaks-order", Constant, {"breaks": (0.6, 0.2)}, "breaks"),
    ("constant-breaks-nan", Constant, {"breaks": (NAN,)}, "breaks"),
    ("constant-breaks-str", Constant, {"breaks": ("a",)}, "breaks"),
    ("constant-breaks-scalar", Constant, {"breaks": 0.5}, "breaks"),
    *[(f"dvp-kappa={v!r}", _dilated_vp, {"kappa": v}, "kappa")
      for v in (0.0, -1.0, NAN, INF, 10.0, 20.0, "a")],
    ("dvp-kappa-shape", _dilated_vp, {"kappa": np.ones(3)}, "kappa"),
    *[(f"dvp-dim={v!r}", _dilated_vp, {"dim": v}, "dim") for v in (0, -1, 2.5, NAN, INF, "100")],
    *[(f"dve-kappa={v!r}", _dilated_ve, {"kappa": v}, "kappa") for v in (0.0, NAN, 10.0)],
    ("dve-dim", _dilated_ve, {"dim": 0}, "dim"),
    ("dve-form", _dilated_ve, {"form": "cubic"}, "form"),
    *[(f"ddpm-noise_scale={v!r}", DDPM, {"noise_scale": v}, "noise_scale") for v in (0.0, NAN)],
    *[(f"ddpm-T={v!r}", DDPM, {"num_train_steps": v}, "num_train_steps") for v in (0, -5, 2.5, NAN, "10")],
    *[(f"ddpm-beta_start={v!r}", DDPM, {"beta_start": v}, "beta_start") for v in (0.0, 1.0, -0.1, NAN)],
    *[(f"ddpm-beta_end={v!r}", DDPM, {"beta_end": v}, "beta_end") for v in (0.0, 1.5, INF)],
    *[(f"vpsde-beta_min={v!r}", VPSDE, {"beta_min": v}, "beta_min") for v in (0.0, -1.0, NAN)],
    *[(f"vpsde-beta_max={v!r}", VPSDE, {"beta_max": v}, "beta_max") for v in (0.0, INF, -2.0)],
    *[(f"vpsde-eps={v!r}", VPSDE, {"eps": v}, "eps") for v in (0.0, 1.0, NAN, "a")],
    *[(f"cosine-offset={v!r}", Cosine, {"offset": v}, "offset") for v in (0.0, -1.0, NAN)],
    *[(f"cosine-eps={v!r}", Cosine, {"eps": v}, "eps") for v in (0.0, 1.5)],
    ("cosine-noise_scale", Cosine, {"noise_scale": -1.0}, "noise_scale"),
    *[(f"vesde-sigma_min={v!r}", VESDE, {"noise_scale": 3.0, "sigma_min": v}, "sigma_min")
      for v in (0.0, -1.0, NAN)],
    *[(f"vesde-sigma_max={v!r}", VESDE, {"noise_scale": 3.0, "sigma_max": v}, "sigma_max")
      for v in (0.005, NAN, INF)],
    ("vesde-eps", VESDE, {"noise_scale": 3.0, "eps": 1.0}, "eps"),
    ("vesde-noise_scale", VESDE, {"noise_scale": 0.0}, "noise_scale"),
    *[(f"edm-sigma_min={v!r}", EDM, {"noise_scale": 3.0, "sigma_min": v}, "sigma_min") for v in (0.0, NAN)],
    *[(f"edm-sigma_max={v!r}", EDM, {"noise_scale": 3.0, "sigma_max": v}, "sigma_max") for v in (0.001, INF)],
    *[(f"edm-rho={v!r}", EDM, {"noise_scale": 3.0, "rho": v}, "rho") for v in (0.0, -7.0, NAN)],
    ("edm-noise_scale", EDM, {"noise_scale": NAN}, "noise_scale"),
    # -- registry -------------------------------------------------------------------------------
    ("preset-name", registry.preset, {"name": "warp", "dim": 8}, "name"),
    ("preset-name-type", registry.preset, {"name": ["vp"], "dim": 8}, "name"),
    *[(f"preset-dim={v!r}", registry.preset, {"name": "ve", "dim": v}, "dim")
      for v in (0, -1, 2.5, NAN, "8")],
    ("preset-kappa", registry.preset, {"name": "vp-dilated", "dim": 100, "kappa": 0.0}, "kappa"),
    ("preset-kappa-big", registry.preset, {"name": "ve-dilated", "dim": 100, "kappa": 11.0}, "kappa"),
    ("preset-form", registry.preset, {"name": "vp", "dim": 8, "form": "cubic"}, "form"),
    ("preset-sigma_max", registry.preset, {"name": "vesde", "dim": 8, "sigma_max": -1.0}, "sigma_max"),
    ("preset-beta_start", registry.preset, {"name": "ddpm", "dim": 8, "beta_start": 2.0}, "beta_start"),
    ("preset-unknown-param", registry.preset, {"name": "vp", "dim": 8, "rho": 7.0}, "rho"),
    ("make_schedule-name", registry.make_schedule, {"name": "warp", "dim": 8, "noise_scale": 1.0}, "name"),
    ("make_schedule-dim", registry.make_schedule,
     {"name": "vp-dilated", "dim": 0, "noise_scale": 1.0}, "dim"),
    ("make_schedule-noise_scale", registry.make_schedule,
     {"name": "vesde", "dim": 8, "noise_scale": -1.0}, "noise_scale"),
    ("make_schedule-T", registry.make_schedule,
     {"name": "ddpm", "dim": 8, "noise_scale": 1.0, "num_train_steps": 0}, "num_train_steps"),
    ("make_schedule-unknown", registry.make_schedule,
     {"name": "edm", "dim": 8, "noise_scale": 3.0, "kappa": 1.0}, "kappa"),
    ("select-names-empty", registry.select, {"names": [], "index": 0, "dim": 8}, "names"),
    ("select-names", registry.select, {"names": ["warp"], "index": 0, "dim": 8}, "names"),
    ("select-index", registry.select, {"names": ["vp", "ve"], "index": 2, "dim": 8}, "index"),
    ("select-index-neg", registry.select, {"names": ["vp", "ve"], "index": -1, "dim": 8}, "index"),
    ("select-index-frac", registry.select, {"names": ["vp", "ve"], "index": 0.5, "dim": 8}, "index"),
    ("select-dim", registry.select, {"names": ["vp", "ve"], "index": 0, "dim": 0}, "dim"),
    ("select-dim-nan", registry.select, {"names": ["vp", "ve"], "index": 0, "dim": NAN}, "dim"),
    # -- sample ---------------------------------------------------------------------------------
    *[(f"sample-num_particles={v!r}", _sample, {"num_particles": v}, "num_particles")
      for v in (0, -1, 2.5, NAN, "2", None)],
    *[(f"sample-steps={v!r}", _sample, {"steps": v}, "steps") for v in (0, -1, 2.5, NAN, "2")],
    ("sample-steps-pieces", _sample, {"schedule": DilatedVP(3.0, 100), "steps": 1}, "steps"),
    *[(f"sample-chunk_size={v!r}", _sample, {"chunk_size": v}, "chunk_size") for v in (0, -2, 1.5, "a")],
    *[(f"sample-memory_budget={v!r}", _sample, {"memory_budget": v}, "memory_budget")
      for v in (0, -1, NAN, 1.5)],
    ("sample-path_ts-range", _sample, {"path_ts": [0.5, 1.5]}, "path_ts"),
    ("sample-path_ts-nan", _sample, {"path_ts": [NAN]}, "path_ts"),
    ("sample-path_ts-str", _sample, {"path_ts": "abc"}, "path_ts"),
    *[(f"sample-path_coords={v!r}", _sample, {"path_ts": [0.5], "path_coords": v}, "path_coords")
      for v in (-1, 2.5, 5, NAN, "a")],
    *[(f"sample-max_steps={v!r}", _sample, {"steps": None, "max_steps": v}, "max_steps")
      for v in (0, -1, NAN)],
    *[(f"sample-rtol={v!r}", _sample, {"steps": None, "rtol": v}, "rtol") for v in (0.0, -1e-3, NAN, INF)],
    *[(f"sample-atol={v!r}", _sample, {"steps": None, "atol": v}, "atol") for v in (0.0, NAN)],
    ("sample-on_nonfinite", _sample, {"on_nonfinite": "explode"}, "on_nonfinite"),
    ("sample-sharding", _sample, {"sharding": "rows"}, "sharding"),
    *[(f"sample-dtype={v!r}", _sample, {"dtype": v}, "dtype") for v in ("int32", jnp.float16, "nonsense")],
    ("sample-target", _sample, {"target": "gm"}, "target"),
    ("sample-interpolant", _sample, {"interpolant": "linear"}, "interpolant"),
    ("sample-schedule", _sample, {"schedule": "constant"}, "schedule"),
    ("sample-solver", _sample, {"solver": "euler"}, "solver"),
    ("sample-solver-adaptive", _sample, {"steps": None, "solver": diffrax.Euler()}, "solver"),
    ("sample-noise_scale-mismatch", _sample, {"schedule": VESDE(noise_scale=2.0)}, "noise_scale"),
    # -- solve ----------------------------------------------------------------------------------
    *[(f"solve-steps={v!r}", _solve, {"steps": v}, "steps") for v in (0, -3, 2.5, "2", None)],
    ("solve-steps-rtol", _solve, {"steps": diffrax.PIDController(rtol=0.0, atol=1e-6)}, "rtol"),
    ("solve-steps-atol", _solve, {"steps": diffrax.PIDController(rtol=1e-3, atol=NAN)}, "atol"),
    ("solve-stepto-decreasing", _solve, {"steps": diffrax.StepTo(ts=[0.0, 0.6, 0.3, 1.0])}, "steps"),
    ("solve-stepto-breakpoint", _solve,
     {"schedule": DilatedVP(3.0, 100), "steps": diffrax.StepTo(ts=[0.0, 0.4, 1.0])}, "steps"),
    ("solve-piecesteps-shape", _solve, {"steps": PieceSteps(jnp.array([2, 2]))}, "steps"),
    ("solve-piecesteps-zero", _solve, {"steps": PieceSteps(jnp.array([0]))}, "steps"),
    *[(f"solve-max_steps={v!r}", _solve, {"max_steps": v}, "max_steps") for v in (0, -1, 2.5)],
    *[(f"solve-dtype={v!r}", _solve, {"dtype": v}, "dtype") for v in ("int32", "nonsense")],
    ("solve-y0-and-key", _solve, {"y0": jnp.zeros(4)}, "y0"),
    ("solve-y0-shape", _solve, {"key": None, "y0": jnp.zeros(5)}, "y0"),
    ("solve-y0-ndim", _solve, {"key": None, "y0": jnp.zeros((2, 4))}, "y0"),
    ("solve-key-type", _solve, {"key": "seed"}, "key"),
    ("solve-system", _solve, {"system": 3}, "target"),
    ("solve-solver", _solve, {"solver": diffrax.Tsit5}, "solver"),
    ("solve-save", _solve, {"save": (0.5,)}, "save"),
    ("Save-ts", Save, {"ts": (0.5, 1.5)}, "ts"),
    ("Save-coords", Save, {"ts": (0.5,), "coords": -1}, "coords"),
    # -- sweep ----------------------------------------------------------------------------------
    ("sweep-params-lengths", _sweep, {"params": {"a": [1.0, 2.0], "b": [1.0]}}, "params"),
    ("sweep-params-nan", _sweep, {"params": {"kappa": [1.0, NAN]}}, "params"),
    ("sweep-params-inf", _sweep, {"params": {"kappa": [INF, 1.0]}}, "params"),
    ("sweep-params-2d", _sweep, {"params": {"kappa": [[1.0, 2.0]]}}, "params"),
    ("sweep-params-empty", _sweep, {"params": {}}, "params"),
    ("sweep-params-zero-points", _sweep, {"params": {"kappa": []}}, "params"),
    ("sweep-params-str", _sweep, {"params": {"kappa": ["a", "b"]}}, "params"),
    ("sweep-params-type", _sweep, {"params": [1.0, 2.0]}, "params"),
    *[(f"sweep-steps={v!r}", _sweep, {"steps": v}, "steps")
      for v in ([0], [-2], [2.5], ["a"], [NAN], 4, [], [True])],
    ("sweep-noise", _sweep, {"noise": None}, "noise"),
    *[(f"sweep-chunk_size={v!r}", _sweep, {"chunk_size": v}, "chunk_size") for v in (0, -1, 1.5)],
    *[(f"sweep-max_steps={v!r}", _sweep, {"max_steps": v}, "max_steps") for v in (0, -1, NAN)],
    ("sweep-rtol", _sweep, {"steps": None, "rtol": NAN}, "rtol"),
    ("sweep-atol", _sweep, {"steps": None, "atol": -1.0}, "atol"),
    ("sweep-dtype", _sweep, {"dtype": "int8"}, "dtype"),
    ("sweep-build", _sweep, {"build": "gm"}, "build"),
    # -- estimate -------------------------------------------------------------------------------
    ("estimate-empty", _estimate, {"stats": {}}, "stats"),
    ("estimate-type", _estimate, {"stats": [0.5, 0.2]}, "stats"),
    ("estimate-lengths", _estimate,
     {"stats": {"overlap": np.ones(3), "sq_dev": np.ones(2)}}, "stats"),
    ("estimate-scalar", _estimate, {"stats": {"overlap": 0.5, "sq_dev": 0.2}}, "stats"),
    ("estimate-missing", _estimate, {"stats": {"overlap": np.ones(3)}}, "stats"),
    ("estimate-all-nan", _estimate,
     {"stats": {"overlap": np.full(3, NAN), "sq_dev": np.ones(3)}}, "stats"),
    ("estimate-str", _estimate, {"stats": {"overlap": np.array(["a", "b"]), "sq_dev": np.ones(2)}}, "stats"),
    ("estimate-target", _estimate, {"target": "gm"}, "target"),
]


def _word(name: str) -> re.Pattern:
    """``name`` as a whole word: ``p`` must not match ``particles`` or ``p0``."""
    return re.compile(r"(?<![\w])" + re.escape(name) + r"(?![\w])")


@pytest.mark.parametrize(
    "fn,kwargs,name", [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_bad_input_names_the_parameter_and_its_range(fn, kwargs, name):
    with pytest.raises((ValueError, TypeError)) as info:
        fn(**kwargs)
    message = str(info.value)
    assert _word(name).search(message), f"{name!r} not named in: {message}"
    assert RANGE.search(message), f"no range or allowed values in: {message}"
    assert _raised_in_nsjax(info), f"raised from {info.traceback[-1].path}, not nsjax: {message}"


def _raised_in_nsjax(info) -> bool:
    """Whether the innermost frame of the traceback is nsjax's own code (not jax/numpy)."""
    return NSJAX_DIR in Path(str(info.traceback[-1].path)).resolve().parents


def test_the_frame_check_rejects_errors_from_numpy_and_jax():
    """The frame check can fail: an error raised inside numpy or jax is not nsjax's."""
    with pytest.raises(ValueError) as info:
        np.ones(4).reshape(3)
    assert not _raised_in_nsjax(info)
    with pytest.raises(TypeError) as info:
        jnp.asarray("abc")
    assert not _raised_in_nsjax(info)
    with pytest.raises(ValueError) as info:
        GaussianMixture(4, p=2.0)
    assert _raised_in_nsjax(info)


def test_case_ids_are_unique():
    ids = [c[0] for c in CASES]
    assert len(ids) == len(set(ids))


def test_the_word_regex_is_strict():
    """The check that fails on a substring: ``p`` in ``particles``/``p0`` is not ``p``."""
    assert not _word("p").search("num_particles must be >= 1")
    assert not _word("p").search("p0 must lie in (0, 1)")
    assert _word("p").search("p must lie in (0, 1), got nan")
    assert not _word("dim").search("dimension must be >= 1")


# -- the good values still pass, traced values still pass ---------------------------------------
def test_traced_parameters_still_pass_under_jit_vmap_grad():
    def overlap(p, kappa, c):
        target = GaussianMixture(8, p, 0.25)
        interp = Linear(noise_scale=c)
        schedule = DilatedVP(kappa, 8)
        sol = solve(target, interp, schedule, key=KEY, steps=4, dtype=jnp.float64)
        return target.order_parameter(sol.state)

    values = jax.jit(jax.vmap(overlap))(jnp.array([0.3, 0.7]), jnp.array([1.0, 2.0]), jnp.ones(2))
    assert values.shape == (2,) and bool(jnp.all(jnp.isfinite(values)))
    grad = jax.grad(overlap)(0.6, 1.5, 1.0)
    assert bool(jnp.isfinite(grad))
    km = jax.jit(lambda w: KModeMixture(6, weights=w).num_modes)(jnp.array([0.5, 0.3, 0.2]))
    assert km == 3
    preset = jax.jit(lambda i, d: registry.select(["vp", "ve"], i, d).interpolant.noise_scale)
    assert float(preset(1, 9.0)) == pytest.approx(3.0)


def test_boundary_values_that_are_allowed():
    GaussianMixture(1, p=1e-6, sigma2=1e-12)
    DilatedVP(kappa=9.99, dim=100)
    Constant(breaks=(0.25, 0.5))
    registry.select(["vp", "ve"], 1, 8)
    nsjax.sample(_gm(), Linear(), Constant(), KEY, 1, steps=1, chunk_size=5, path_ts=[0.0, 1.0],
                 path_coords=4, memory_budget=1)


# -- property-based: random floats, NaN/inf/negatives included ------------------------------------
FLOATS = st.floats(allow_nan=True, allow_infinity=True, width=64) | st.sampled_from(
    [0.0, -0.0, 1.0, -1.0, NAN, INF, -INF, 1e-300, 1e300]
)
PROP = settings(max_examples=50, deadline=None)


def _check(build, name, valid, value):
    """``build(value)`` succeeds exactly when ``valid(value)``; otherwise a ValueError naming ``name``."""
    if valid(value):
        build(value)
        return
    with pytest.raises(ValueError) as info:
        build(value)
    assert _word(name).search(str(info.value)), str(info.value)
    assert RANGE.search(str(info.value)), str(info.value)


def _in(low, high):
    return lambda v: math.isfinite(v) and low < v < high


@PROP
@given(FLOATS)
def test_gm_p_property(v):
    _check(lambda v: GaussianMixture(4, p=v), "p", _in(0.0, 1.0), v)


@PROP
@given(FLOATS)
def test_gm_sigma2_property(v):
    _check(lambda v: GaussianMixture(4, sigma2=v), "sigma2", _in(0.0, INF), v)


@PROP
@given(FLOATS)
def test_interpolant_noise_scale_property(v):
    _check(lambda v: Trig(noise_scale=v), "noise_scale", _in(0.0, INF), v)
    _check(lambda v: make_interpolant("linear", v), "noise_scale", _in(0.0, INF), v)


@PROP
@given(FLOATS)
def test_dilated_kappa_property(v):
    _check(lambda v: DilatedVP(v, 64), "kappa", _in(0.0, 8.0), v)
    _check(lambda v: DilatedVE(v, 64, form="trig"), "kappa", _in(0.0, 8.0), v)


@PROP
@given(FLOATS)
def test_dim_property(v):
    def valid(v):
        return math.isfinite(v) and v >= 1 and float(v).is_integer()

    _check(lambda v: GaussianMixture(v), "dim", valid, v)
    _check(lambda v: DilatedVP(0.5, v), "dim", valid, v)


@PROP
@given(FLOATS, FLOATS)
def test_process_schedule_properties(a, b):
    _check(lambda v: VPSDE(eps=v), "eps", _in(0.0, 1.0), a)
    _check(lambda v: Cosine(offset=v), "offset", _in(0.0, INF), a)
    _check(lambda v: DDPM(beta_end=v), "beta_end", _in(0.0, 1.0), b)
    _check(lambda v: EDM(noise_scale=2.0, rho=v), "rho", _in(0.0, INF), b)
    sigma_min = abs(a) if math.isfinite(a) and a != 0 else 0.01
    _check(lambda v: VESDE(noise_scale=2.0, sigma_min=sigma_min, sigma_max=v), "sigma_max",
           _in(sigma_min, INF), b)


@PROP
@given(st.lists(FLOATS, min_size=1, max_size=4))
@pytest.mark.x64  # the oracle judges float64 weights (1e-300 > 0 is 0 in float32: a valid refusal)
def test_kmode_weights_property(ws):
    def valid(ws):
        w = np.asarray(ws)
        return bool(np.all(np.isfinite(w)) and np.all(w > 0) and abs(w.sum() - 1) <= 1e-6)

    n = len(ws)
    _check(lambda w: KModeMixture(4, weights=w, variances=[1.0] * n, amplitudes=[1.0] * n),
           "weights", valid, ws)


@PROP
@given(st.lists(FLOATS, min_size=1, max_size=3))
def test_sweep_params_property(values):
    def valid(v):
        return all(math.isfinite(x) for x in v)

    def run(v):
        # a non-int step count stops the sweep after the params check, before any compilation
        return _sweep(params={"kappa": v}, steps=[0])

    if valid(values):
        with pytest.raises(ValueError, match=r"\bsteps\b"):
            run(values)
    else:
        _check(run, "params", valid, values)
