"""Feature metrics (KL, face detector) on images the tests draw, and the CLI end to end."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from flax_celeba import cli
from flax_celeba.features import (
    HaarCascadeDetector,
    attribute_histogram,
    high_level_error,
    kl_divergence,
    no_face_percentage,
)

cv2 = pytest.importorskip("cv2")


def drawn_face(size: int = 256) -> np.ndarray:
    """A cartoon frontal face (skin ellipse, eyes, brows, nose, mouth), blurred: RGB uint8."""
    img = np.full((size, size, 3), 90, np.uint8)
    s = size / 256
    p = lambda *v: tuple(int(round(a * s)) for a in v)  # noqa: E731
    cv2.ellipse(img, p(128, 135), p(80, 105), 0, 0, 360, (225, 190, 170), -1)
    for x in (98, 158):
        cv2.ellipse(img, p(x, 112), p(17, 9), 0, 0, 360, (245, 245, 245), -1)
        cv2.circle(img, p(x, 112), int(8 * s), (40, 30, 30), -1)
        cv2.rectangle(img, p(x - 24, 88), p(x + 24, 95), (70, 50, 40), -1)
    cv2.ellipse(img, p(128, 150), p(10, 22), 0, 0, 360, (205, 170, 150), -1)
    cv2.ellipse(img, p(128, 190), p(30, 10), 0, 0, 360, (150, 60, 60), -1)
    return cv2.GaussianBlur(img, (9, 9), 3)


def test_kl_divergence_values():
    p = [0.8, 0.2]
    assert kl_divergence(p, p) == pytest.approx(0.0, abs=1e-12)
    exact = 0.8 * math.log(0.8 / 0.5) + 0.2 * math.log(0.2 / 0.5)
    assert kl_divergence(p, [0.5, 0.5], smoothing=0.0) == pytest.approx(exact, rel=1e-12)
    assert np.isfinite(kl_divergence(p, [1.0, 0.0]))  # smoothing keeps an empty bin finite
    np.testing.assert_allclose(attribute_histogram([0, 1, 1, 2], 4), [0.25, 0.5, 0.25, 0.0])
    with pytest.raises(ValueError, match="labels"):
        attribute_histogram([0, 5], 4)


class BrightnessClassifier:
    """A toy attribute: is the image's mean brightness above 128 (1) or not (0)."""

    num_classes = 2

    def __call__(self, images):
        return (np.asarray(images).reshape(len(images), -1).mean(axis=1) > 128).astype(int)


def test_high_level_error_against_reference():
    dark, bright = np.zeros((1, 8, 8, 3), np.uint8), np.full((1, 8, 8, 3), 255, np.uint8)
    images = np.concatenate([dark] * 8 + [bright] * 2)
    reference = [0.5, 0.5]
    expected = kl_divergence(reference, [0.8, 0.2])
    assert high_level_error(images, BrightnessClassifier(), reference) == pytest.approx(expected)


def test_haar_detector_blank_noise_and_drawn_face():
    detector = HaarCascadeDetector()
    blank = np.zeros((256, 256, 3), np.uint8)
    noise = np.random.default_rng(0).integers(0, 256, (256, 256, 3)).astype(np.uint8)
    assert detector(blank) == 0
    assert detector(noise) == 0
    assert detector(drawn_face()) == 1
    assert no_face_percentage([blank, drawn_face(), noise, drawn_face()], detector) == 50.0


class CountingDetector:
    """A stub detector returning given face counts in turn, recording the images it saw."""

    def __init__(self, counts):
        self.counts, self.seen = list(counts), []

    def __call__(self, image):
        self.seen.append(np.asarray(image).copy())
        return self.counts[len(self.seen) - 1]


def test_no_face_percentage_counts_images_without_a_face():
    images = np.arange(5 * 4 * 4 * 3, dtype=np.uint8).reshape(5, 4, 4, 3)
    detector = CountingDetector([0, 2, 0, 1, np.int64(5)])
    assert no_face_percentage(images, detector) == 40.0  # 2 of 5 have no face
    assert len(detector.seen) == 5  # each image once, in order
    for seen, image in zip(detector.seen, images):
        np.testing.assert_array_equal(seen, image)
    assert no_face_percentage(images[:3], CountingDetector([0, 0, 0])) == 100.0
    assert no_face_percentage(images[:3], CountingDetector([1, 3, 1])) == 0.0
    assert no_face_percentage(images[:3], CountingDetector([0, 1, 1])) == pytest.approx(100 / 3)
    for bad in (-1, None, 0.5, True):
        with pytest.raises(ValueError, match="image 1"):
            no_face_percentage(images[:2], CountingDetector([0, bad]))
    with pytest.raises(ValueError, match="no images"):
        no_face_percentage([], CountingDetector([]))


def test_cli_features_on_blank_and_drawn_faces(tmp_path, capsys):
    """``flax-celeba features`` with the Haar cascade: blank images have no face (100%), and a
    folder of 2 drawn faces and 2 blank images gives 50%."""
    from PIL import Image

    blank = np.zeros((256, 256, 3), np.uint8)
    for name, images in {"blank": [blank] * 3, "mixed": [blank, drawn_face()] * 2}.items():
        folder = tmp_path / name
        folder.mkdir()
        for i, image in enumerate(images):
            Image.fromarray(image).save(folder / f"{i}.png")
        assert cli.main(["features", str(folder)]) == 0
        result = json.loads((folder / "features.json").read_text())
        assert result["num_images"] == len(images)
        assert result["no_face_percent"] == {"blank": 100.0, "mixed": 50.0}[name]


def test_cli_convert_sample_features(small_vp, small_ve, tmp_path, capsys):
    _, vp_folder = small_vp
    converted = tmp_path / "vp_flax"
    assert cli.main(["convert", str(vp_folder), str(converted)]) == 0
    for method in ("ancestral", "ode:constant"):
        out = tmp_path / method.replace(":", "_")
        code = cli.main(
            [
                "sample",
                "--model",
                str(converted),
                "--method",
                method,
                "--steps",
                "3",
                "--num-images",
                "2",
                "--batch-size",
                "2",
                "--out",
                str(out),
            ]
        )
        assert code == 0
        data = np.load(out / "samples.npz")
        assert data["images"].shape == (2, 16, 16, 3) and data["images"].dtype == np.uint8
        assert (out / "grid.png").is_file()
    _, ve_folder = small_ve
    out = tmp_path / "ve"
    assert (
        cli.main(
            [
                "sample",
                "--model",
                str(ve_folder),
                "--steps",
                "2",
                "--num-images",
                "2",
                "--out",
                str(out),
                "--sigma-max",
                "348",
            ]
        )
        == 0
    )
    assert json.loads((out / "meta.json").read_text())["method"] == "pc"
    assert cli.main(["features", str(out)]) == 0
    result = json.loads((out / "features.json").read_text())
    # 16x16 samples are smaller than the Haar cascade's 24x24 window: no face can be found
    assert result["num_images"] == 2 and result["no_face_percent"] == 100.0


def test_cli_missing_model_says_how_to_download(tmp_path, capsys):
    code = cli.main(
        [
            "sample",
            "--model",
            str(tmp_path / "nowhere"),
            "--steps",
            "2",
            "--out",
            str(tmp_path / "o"),
        ]
    )
    assert code == 2
    assert "huggingface-cli download google/ddpm-celebahq-256" in capsys.readouterr().err
