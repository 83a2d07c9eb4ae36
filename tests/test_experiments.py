"""`nsjax.experiments`: one build per target parameter set, the results.json schema, the config,
and the module boundary of the builds (a tiny custom config; `--quick` is tests/test_reproduce.py)."""

import ast
import copy
import dataclasses
import json
import pathlib

import jax
import jax.numpy as jnp
import pytest

from nsjax.experiments import Config, builds, config_for, run, schema
from nsjax.experiments.config import P_TOL, PAPER, S2_TOL
from nsjax.experiments.studies import silent
from nsjax.features import estimate
from nsjax.targets import CurieWeiss, GaussianMixture

PARTICLES = 400


def _particle_run(target):
    """Dilated VP, Heun, N = 50, ``PARTICLES`` full particles of ``target`` (as the study runs)."""
    cfg = config_for("quick")
    grid = builds.paper_grid(("vp-dilated",), [target.dim], cfg)
    keys = jax.random.split(jax.random.PRNGKey(0), PARTICLES)
    result = builds.sweep(
        builds.ParticleBuild(target),
        grid.params,
        keys,
        steps=[50],
        solver=builds.solver("heun"),
        dtype=jnp.float32,
    )
    assert result.nonfinite.sum() == 0
    return estimate(target, result.point(0, 0))


def test_particle_builds_of_targets_differing_only_in_p_sample_each_target():
    # One process, two targets that differ only in p: each run must sample its own law. A build
    # cached on (type, dim, posterior) hands the second run the first target (p_hat = 0.81 for
    # p = 0.3). Dilated VP + Heun at N = 50 is far inside P_TOL (docs/theory.md §4); the rest is
    # Monte-Carlo error, at most 4 standard errors.
    first = GaussianMixture(dim=64, p=0.8, sigma2=0.25)
    second = GaussianMixture(dim=64, p=0.3, sigma2=0.25)
    assert builds.ParticleBuild(first) != builds.ParticleBuild(second)
    for target in (first, second):
        f = _particle_run(target)
        assert f["p_ref"] == pytest.approx(float(target.p))
        assert f["p_error"] <= P_TOL + 4 * f["p_stderr"], (float(target.p), f["p_hat"])


def test_particle_builds_of_targets_differing_only_in_theta_sample_each_target():
    # E|M| at d = 64: 0.95 (theta = 2, ordered) against 0.14 (theta = 0.5): a reused build of
    # the first target is off by a factor 6 on the second.
    first = CurieWeiss(dim=64, theta=2.0, h=0.0, posterior="exact")
    second = CurieWeiss(dim=64, theta=0.5, h=0.0, posterior="exact")
    assert builds.ParticleBuild(first) != builds.ParticleBuild(second)
    for target in (first, second):
        f = _particle_run(target)
        bound = S2_TOL + 4 * f["m_abs_stderr"] / f["m_abs_ref"]
        assert f["m_abs_error"] <= bound, (float(target.theta), f["m_abs_hat"], f["m_abs_ref"])


def test_particle_build_equality_is_equality_of_every_parameter():
    gm = GaussianMixture(dim=16, p=0.8, sigma2=0.25)
    same = builds.ParticleBuild(GaussianMixture(dim=16, p=0.8, sigma2=0.25))
    assert builds.ParticleBuild(gm) == same and hash(builds.ParticleBuild(gm)) == hash(same)
    others = [
        GaussianMixture(dim=16, p=0.7, sigma2=0.25),
        GaussianMixture(dim=16, p=0.8, sigma2=0.5),
        GaussianMixture(dim=32, p=0.8, sigma2=0.25),
        GaussianMixture(dim=16, p=0.8, sigma2=0.25, direction=-jnp.ones(16) / 4),
        CurieWeiss(dim=16, theta=2.0, h=0.5),
    ]
    for other in others:
        assert builds.ParticleBuild(gm) != builds.ParticleBuild(other), other
    cw = CurieWeiss(dim=16, theta=2.0, h=0.5, posterior="exact")
    for other in (
        CurieWeiss(dim=16, theta=2.0, h=0.25, posterior="exact"),
        CurieWeiss(dim=16, theta=2.0, h=0.5, posterior="two-saddle"),
    ):
        assert builds.ParticleBuild(cw) != builds.ParticleBuild(other), other


# -- the module boundary ---
def _imported_modules(path: pathlib.Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = "." * node.level + (node.module or "")
            sep = "." if node.module else ""
            names.add(base)
            names.update(base + sep + a.name for a in node.names)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
    return names


def test_builds_is_the_only_module_that_imports_sweeps_schedules_or_registry():
    package = pathlib.Path(builds.__file__).parent
    core = ("sweeps", "schedules", "registry")
    importers = set()
    for path in sorted(package.glob("*.py")):
        for name in _imported_modules(path):
            parts = name.lstrip(".").split(".")
            relative_to_nsjax = name.startswith("..") or parts[0] == "nsjax"
            if relative_to_nsjax and any(p in core for p in parts):
                importers.add(path.name)
    assert importers == {"builds.py"}


# -- config ---
def test_config_is_frozen_and_normalized():
    cfg = Config("custom", particles={64: 50, 16: 10}, reduction_dims=[1e3, 1e4])
    assert cfg.particles == ((64, 50), (16, 10)) and cfg.reduction_dims == (1e3, 1e4)
    assert cfg.particles_at(16) == 10 and cfg.particles_at(128) == 200
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.p = 0.5
    assert hash(cfg) == hash(Config("custom", particles=((64, 50), (16, 10)), reduction_dims=(1e3, 1e4)))
    assert cfg.to_json()["particles"] == {"64": 50, "16": 10}
    assert dataclasses.replace(cfg, seed=3).seed == 3


@pytest.mark.parametrize(
    "field, value",
    [
        ("p", 1.0),
        ("sigma2", 0.0),
        ("kappa", -1.0),
        ("quantiles", 1),
        ("loop_runs", 6),
        ("cw_posterior", "laplace"),
        ("particles", {1000: 0}),
    ],
)
def test_config_rejects_bad_values_by_name(field, value):
    with pytest.raises(ValueError, match=field):
        Config("custom", **{field: value})


def test_config_for_rejects_unknown_modes():
    with pytest.raises(ValueError, match="mode"):
        config_for("fast")


# -- results.json of a tiny run ---
TINY = Config(
    "tiny",
    reduction_dims=(1e3, 1e4),
    quantiles=64,
    max_steps_paper=256,
    max_steps_standard=256,
    solvers=("euler",),
    adaptive_solvers=("tsit5",),
    adaptive_standard=False,
    gm_particle_dims=(64,),
    cw_particle_dims=(64,),
    particles={64: 32},
    particle_solvers=("euler",),
    fig2_gm_dim=256,
    fig2_cw_dim=0,
    fig2_realizations=4,
    fig1_dim=1024,
    loop_runs=0,
)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny")
    results = run(TINY, str(folder), progress=silent)
    with open(folder / "results.json") as handle:
        return folder, results, json.load(handle)


def test_tiny_results_json_validates_and_lists_every_part(tiny):
    folder, results, document = tiny
    schema.validate(document)
    assert document["schema_version"] == schema.SCHEMA_VERSION
    assert document == json.loads(json.dumps(results.to_json()))
    assert "kappa_check" in document and "sweep_vs_loop" not in document  # loop_runs = 0
    assert set(document["max_steps_searched"]) == {"paper", "standard", "kappa"}
    assert set(document["figure2"]) == {"GM"}
    names = {f"{n}/euler" for n in PAPER} | {f"{n}/euler" for n, *_ in builds.STANDARD}
    assert set(document["steps_to_tolerance"]) == names
    assert document["figures"] == [
        "fig1_schedules.png",
        "fig2_paths.png",
        "fig3_steps_vs_dimension.png",
        "fig3b_steps_standard.png",
        "fig4_feature_error.png",
        "fig4b_feature_error_cw.png",
        "fig5_adaptive_nfe.png",
    ]
    for name in document["figures"]:
        assert (folder / name).stat().st_size > 10_000, name
    report = (folder / "report.md").read_text()
    assert "Standard schedules" in report and "κ check" in report


def _corrupt(document, path, value=KeyError):
    out = copy.deepcopy(document)
    node = out
    for key in path[:-1]:
        node = node[key]
    if value is KeyError:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return out


@pytest.mark.parametrize(
    "path, value, message",
    [
        (("adaptive",), KeyError, "'adaptive'"),
        (("schema_version",), 2, "schema_version"),
        (("steps_to_tolerance", "vp/euler", "1000"), "8", r"\['vp/euler'\]\['1000'\]"),
        (("steps_to_tolerance", "vp/euler", "1e3"), 8, "key matching"),
        (("slope", "vp/euler"), KeyError, "one entry per steps_to_tolerance table"),
        (("feature_tables", "gm_reduction", 0, "p_hat"), "0.8", r"\['p_hat'\]"),
        (("feature_tables", "gm_reduction", 0, "N"), KeyError, "'N'"),
        (("dichotomy", "rows", "vp", "p_ok"), 1, "boolean"),
        (("config", "particles"), [[64, 32]], "object"),
        (("kappa_check", "steps_to_tolerance", "vp-dilated(kappa=6)/euler"), [], "object"),
        (("figure2", "XY"), {}, "key matching"),
        (("surplus",), 1, "not in the schema"),
    ],
)
def test_corrupted_results_json_fails_validation(tiny, path, value, message):
    _, _, document = tiny
    with pytest.raises(ValueError, match=message):
        schema.validate(_corrupt(document, path, value))
