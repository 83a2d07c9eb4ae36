"""Test configuration.

- Float32, what users run, is the default: a test runs with ``jax_enable_x64`` only when it is
  marked ``@pytest.mark.x64`` (a float64 oracle, or a float64 run by request). The mode is set
  before the test's fixtures, so module-scoped fixtures built for an x64 test are float64 too.
- Hypothesis draws fixed examples (profile ``ci``, derandomised); ``HYPOTHESIS_PROFILE=explore``
  searches more.
- One persistent XLA compilation cache per test session (a fresh temporary folder, inherited by
  the command-line tests' subprocesses through ``JAX_COMPILATION_CACHE_DIR``): a program that
  several tests or subprocesses compile identically is compiled once. Results cannot depend on
  it (the cache key is the full program); it only saves CI time.
"""

import atexit
import os
import shutil
import tempfile

import jax
import pytest
from hypothesis import settings

# Property tests draw the same examples on every run (CI must not pass or fail by chance); run
# with --hypothesis-seed=N or HYPOTHESIS_PROFILE=explore to search further.
settings.register_profile("ci", derandomize=True, print_blob=True)
settings.register_profile("explore", max_examples=500)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    _cache = tempfile.mkdtemp(prefix="nsjax-test-xla-cache-")
    atexit.register(shutil.rmtree, _cache, ignore_errors=True)
    os.environ["JAX_COMPILATION_CACHE_DIR"] = _cache
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.5")
jax.config.update("jax_compilation_cache_dir", os.environ["JAX_COMPILATION_CACHE_DIR"])
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    """x64 on for tests marked ``x64``, off otherwise (runs before fixture set-up)."""
    jax.config.update("jax_enable_x64", item.get_closest_marker("x64") is not None)
