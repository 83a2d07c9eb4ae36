"""`nsjax sample`: JSON fields, the reduced engine, and clear errors naming the argument."""

import json
import re
import subprocess
import sys

import pytest

from nsjax.cli import main


def test_sample_gm_writes_json(tmp_path, capsys):
    out = tmp_path / "run.json"
    assert (
        main(
            [
                "sample",
                "--d",
                "500",
                "--particles",
                "64",
                "--steps",
                "10",
                "--schedule",
                "vp-dilated",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    report = json.loads(out.read_text())
    for key in (
        "target",
        "schedule",
        "d",
        "particles",
        "steps",
        "solver",
        "nfe",
        "wall_seconds",
        "p_hat",
        "p_ref",
        "sigma2_hat",
        "sigma2_ref",
    ):
        assert key in report
    assert report["nfe"] == 10 and report["d"] == 500 and report["target"] == "gm"
    assert json.loads(capsys.readouterr().out) == report


def test_sample_cw_and_reduced_engine(capsys):
    assert (
        main(
            [
                "sample",
                "--target",
                "cw",
                "--d",
                "100",
                "--particles",
                "16",
                "--steps",
                "8",
                "--solver",
                "heun",
                "--posterior",
                "two-saddle",
            ]
        )
        == 0
    )
    report = json.loads(capsys.readouterr().out)
    for key in ("p_hat", "p_ref", "m_abs_hat", "m_abs_ref", "spin_error"):
        assert key in report
    assert report["nfe"] == 16
    # the within-mode spread: exact reference 1 - E[M^2] at d = 100, relative error
    from nsjax.targets import CurieWeiss

    assert report["spread_ref"] == CurieWeiss(100, 2.0, report["h"]).reference()["spread"]
    assert report["spread_error"] == abs(report["spread_hat"] / report["spread_ref"] - 1)
    assert (
        main(
            [
                "sample",
                "--engine",
                "reduced",
                "--d",
                "1000000000",
                "--particles",
                "1000",
                "--steps",
                "8",
                "--x64",
            ]
        )
        == 0
    )
    assert json.loads(capsys.readouterr().out)["d"] == 10**9


@pytest.mark.parametrize(
    "argv,needle",
    [
        (["--d", "0"], "--d"),
        (["--p", "1.2"], "--p"),
        (["--sigma2", "-1"], "--sigma2"),
        (["--kappa", "0"], "--kappa"),
        (["--particles", "2.5"], "--particles"),
        (["--solver", "leapfrog"], "--solver"),
        (["--engine", "fast"], "--engine"),
        (["--kappa", "50", "--d", "100"], "--kappa"),
    ],
)
def test_bad_arguments_exit_nonzero_naming_the_argument(argv, needle):
    """Exit status 2 (as the README promises) and the argument named in the error line itself,
    not merely in argparse's usage line (which names every option)."""
    proc = subprocess.run(
        [sys.executable, "-m", "nsjax.cli", "sample", *argv], capture_output=True, text=True
    )
    assert proc.returncode == 2, proc.stderr
    error_line = proc.stderr.strip().splitlines()[-1]
    assert "error:" in error_line
    assert re.search(re.escape(needle) + r"(?![\w-])", error_line), error_line


def test_nonfinite_particles_exit_3_and_say_how_many():
    """A run whose particles end non-finite (here: adaptive steps exhausting --max-steps) exits
    with status 3 and a message counting them, never a silent average."""
    proc = subprocess.run(
        [sys.executable, "-m", "nsjax.cli", "sample", "--engine", "reduced", "--d", "1000",
         "--particles", "4", "--schedule", "vp", "--adaptive", "--solver", "tsit5",
         "--rtol", "1e-9", "--max-steps", "2"],
        capture_output=True, text=True,
    )
    assert proc.returncode == 3, proc.stderr
    assert "4 of 4 particles ended non-finite" in proc.stderr
    assert "max_steps=2" in proc.stderr
