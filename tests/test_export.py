"""Export to diffusers: round trips through diffusers' own scheduler tables, and the CLI."""

import json
import math

import jax
import numpy as np
import pytest

import nsjax
from nsjax import schedules as S
from nsjax.cli import main
from nsjax.export import to_diffusers

diffusers = pytest.importorskip("diffusers")


def test_ddpm_table_matches_diffusers_alphas_cumprod():
    table = diffusers.DDPMScheduler().alphas_cumprod.double().numpy()  # float32 cumprod
    with jax.enable_x64(True):
        ours = np.exp(np.asarray(S.DDPM().log_alpha_bar(np.arange(1.0, 1001.0))))
    np.testing.assert_allclose(ours, table, rtol=1e-6)


def test_karras_sigmas_round_trip_through_euler_discrete():
    euler = diffusers.EulerDiscreteScheduler(use_karras_sigmas=True)
    euler.set_timesteps(10)
    sigmas = euler.sigmas.double().numpy()  # 11 values, last 0
    listed = S.Tabulated.from_sigmas(sigmas, noise_scale=1.0)
    out = to_diffusers(listed, nsjax.vp(), 10, "vp")
    np.testing.assert_allclose(out["sigmas"], sigmas, rtol=1e-6)  # float32 knots
    again = diffusers.EulerDiscreteScheduler()
    again.set_timesteps(sigmas=out["sigmas"])
    np.testing.assert_allclose(again.sigmas.numpy(), euler.sigmas.numpy(), rtol=1e-6)
    # timesteps: diffusers interpolates log sigma between integer table entries, nsjax inverts its
    # continuous table; both agree to a fraction of a step
    np.testing.assert_allclose(out["timesteps_continuous"], euler.timesteps.numpy(), atol=0.05)
    # the same list as VE sigmas (x = x1 + sigma z)
    ve = to_diffusers(listed, nsjax.vp(), 10, "ve")
    np.testing.assert_allclose(ve["sigmas"], sigmas, rtol=1e-6)


def test_ddpm_timesteps_round_trip_through_ddpm_scheduler():
    ddpm = diffusers.DDPMScheduler()
    ddpm.set_timesteps(10)
    steps = ddpm.timesteps.numpy()  # [900, 800, ..., 0]
    listed = S.Tabulated.from_ddpm_timesteps(steps)
    assert not listed.ends_at_data
    out = to_diffusers(listed, nsjax.vp(), len(steps) - 1, "vp")
    assert out["timesteps"] == steps.tolist() and out["distinct_timesteps"]
    np.testing.assert_allclose(out["timesteps_continuous"], steps, atol=1e-4)
    again = diffusers.DDPMScheduler()
    again.set_timesteps(timesteps=out["timesteps"])
    assert again.timesteps.tolist() == steps.tolist()
    # an nsjax schedule sent out and read back gives its own tau at the grid
    schedule = S.DDPM()
    exported = to_diffusers(schedule, nsjax.vp(), 6, "vp")
    back = S.Tabulated.from_ddpm_timesteps(exported["timesteps_continuous"])
    np.testing.assert_allclose(back.tau, exported["tau"], rtol=1e-6)


def test_score_sde_ve_sigmas_round_trip():
    d = 196_608
    c = math.sqrt(d)
    sde = diffusers.ScoreSdeVeScheduler(sigma_max=348.0, sigma_min=0.01)
    sde.set_timesteps(8)
    sde.set_sigmas(8)
    sigmas = sde.sigmas.double().numpy()  # 8 positive values: the list stops short of the data
    listed = S.Tabulated.from_sigmas(sigmas, noise_scale=c)
    out = to_diffusers(listed, nsjax.ve(d), 7, "ve")
    assert not out["ends_at_data"] and out["sigmas"][-1] == 0.0  # the denoising step
    np.testing.assert_allclose(out["sigmas"][:-1], sigmas, rtol=1e-6)
    with pytest.raises(ValueError, match="noise_scale"):
        to_diffusers(listed, nsjax.vp(), 7, "ve")
    with pytest.raises(ValueError, match="sigma_max"):  # tau = 0: sigma = inf
        to_diffusers(S.DilatedVE(3.0, d), nsjax.ve(d), 8, "ve")


def test_cli_export_writes_json_and_rejects_bad_kind(tmp_path, capsys):
    out = tmp_path / "ays.json"
    argv = ["export-schedule", "--kind", "vp", "--d", "1000", "--steps", "6", "--schedule", "ddpm"]
    assert main([*argv, "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report == json.loads(capsys.readouterr().out)
    expected = to_diffusers(S.DDPM(), nsjax.vp(), 6, "vp")
    assert report["timesteps"] == expected["timesteps"] and len(report["timesteps"]) == 7
    assert report["timesteps"][0] == 999 and report["timesteps"][-1] == 0  # DDPM's own ends
    ve = ["export-schedule", "--kind", "ve", "--d", "1000", "--steps", "4", "--schedule", "ve-dilated"]
    assert main(ve) == 0
    sigmas = json.loads(capsys.readouterr().out)["sigmas"]
    assert sigmas[0] == 348.0 and sigmas[-1] == 0.0 and np.all(np.diff(sigmas) <= 0)
    for bad, needle in ((["--kind", "vx"], "--kind"), (["--kind", "vp", "--steps", "0"], "--steps")):
        with pytest.raises(SystemExit) as exit_info:
            main(["export-schedule", *bad])
        assert exit_info.value.code == 2 and needle in capsys.readouterr().err
