"""``flax-celeba reference`` and ``flax-celeba sweep`` end to end on a tiny random model.

What must hold whatever the weights: ``reference`` stores the exact class frequencies of the
images it is given (and their counts, summing to the number of images); ``sweep`` writes one
``sweep.csv`` row per (method, steps) in that order, each row's samples in its own folder, the
attribute KL of each row equal to the KL recomputed from that folder's images, and a no-face
percentage of exactly 100 on 8x8 images (smaller than the Haar cascade's 24x24 window, so no face
can be found).
"""

from __future__ import annotations

import csv
import json
import math
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from flax_celeba import cli, pipeline
from flax_celeba.features import high_level_error, load_histogram, load_images

cv2 = pytest.importorskip("cv2")  # the default detector (haar)


class Brightness:
    """A toy attribute classifier: mean brightness above 128 (1) or not (0)."""

    num_classes = 2

    def __call__(self, images):
        return (np.asarray(images).reshape(len(images), -1).mean(axis=1) > 128).astype(int)


@pytest.fixture
def toy_classifier(monkeypatch) -> str:
    """``MODULE:ATTRIBUTE`` of :class:`Brightness`, importable by the CLI."""
    module = types.ModuleType("toy_attrs")
    module.Brightness = Brightness
    monkeypatch.setitem(sys.modules, "toy_attrs", module)
    return "toy_attrs:Brightness"


def _reference(tmp_path: Path, classifier: str) -> Path:
    """``flax-celeba reference`` on 3 dark and 1 bright 8x8 PNGs (and a grid it must skip)."""
    from PIL import Image

    data = tmp_path / "data"
    data.mkdir()
    for i, value in enumerate([20, 230, 20, 20]):
        Image.fromarray(np.full((8, 8, 3), value, np.uint8)).save(data / f"img{i}.png")
    Image.fromarray(np.full((8, 16, 3), 255, np.uint8)).save(data / "grid.png")
    out = tmp_path / "ref.json"
    assert cli.main(["reference", str(data), "--classifier", classifier, "--out", str(out)]) == 0
    return out


def test_reference_histogram(tmp_path, toy_classifier):
    ref = _reference(tmp_path, toy_classifier)
    data = json.loads(ref.read_text())
    assert data["classifier"] == toy_classifier
    assert data["counts"] == [3, 1] and data["num_images"] == 4 == sum(data["counts"])
    assert data["histogram"] == [0.75, 0.25]
    np.testing.assert_array_equal(load_histogram(ref), [0.75, 0.25])


def test_sweep_table(tmp_path, tiny_checkpoint, toy_classifier):
    model = tiny_checkpoint(tmp_path / "model")
    ref = _reference(tmp_path, toy_classifier)
    out = tmp_path / "sweep"
    methods, steps, num_images = ["ancestral", "ode:constant"], [2, 3], 2  # one batch shape
    argv = ["sweep", "--model", str(model), "--out", str(out), "--num-images", str(num_images)]
    argv += ["--batch-size", "2", "--methods", *methods, "--steps", *map(str, steps)]
    argv += ["--classifier", toy_classifier, "--reference", str(ref)]
    assert cli.main(argv) == 0
    with open(out / "sweep.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["method"], int(r["steps"])) for r in rows] == [(m, n) for m in methods for n in steps]
    reference = load_histogram(ref)
    for row in rows:
        folder = out / f"{row['method'].replace(':', '-')}_{row['steps']}"
        images = load_images(folder)
        assert images.shape == (num_images, 8, 8, 3) and images.dtype == np.uint8
        meta = json.loads((folder / "meta.json").read_text())
        assert (meta["method"], meta["steps"]) == (row["method"], int(row["steps"]))
        assert int(row["num_images"]) == num_images and row["detector"] == "haar"
        assert float(row["no_face_percent"]) == 100.0
        kl = float(row["attribute_kl"])
        assert math.isfinite(kl) and kl == pytest.approx(
            high_level_error(images, Brightness(), reference), rel=1e-12
        )
        assert math.isfinite(float(row["seconds"])) and float(row["seconds"]) >= 0


@pytest.mark.parametrize(
    "methods, needle",
    [(["ancestral", "pc"], "'pc' needs a score model"), (["ode:nope"], "vp-dilated")],
)
def test_sweep_rejects_bad_methods_before_sampling(
    methods, needle, tmp_path, tiny_checkpoint, capsys
):
    model = tiny_checkpoint(tmp_path / "model")
    out = tmp_path / "sweep"
    argv = ["sweep", "--model", str(model), "--out", str(out), "--steps", "2", "--methods"]
    assert cli.main([*argv, *methods]) == 2
    assert needle in capsys.readouterr().err
    assert not out.exists() or not any(out.iterdir())  # nothing was drawn


def test_sweep_keeps_finished_rows_when_a_cell_fails(tmp_path, tiny_checkpoint, monkeypatch):
    """A failing cell (here the second) ends the sweep with status 2; ``sweep.csv`` holds the
    rows finished before it."""
    model = tiny_checkpoint(tmp_path / "model")
    calls = []

    def generate(model, method, steps, num_images, **kwargs):  # no network: bookkeeping only
        calls.append(steps)
        if len(calls) == 2:
            raise FloatingPointError("ancestral with 3 steps produced non-finite samples")
        return np.full((num_images, *model.image_shape), 0.5, np.float32)

    monkeypatch.setattr(pipeline, "generate", generate)
    out = tmp_path / "sweep"
    argv = ["sweep", "--model", str(model), "--out", str(out), "--num-images", "1"]
    assert cli.main([*argv, "--methods", "ancestral", "--steps", "2", "3"]) == 2
    with open(out / "sweep.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert calls == [2, 3] and [(r["method"], r["steps"]) for r in rows] == [("ancestral", "2")]
