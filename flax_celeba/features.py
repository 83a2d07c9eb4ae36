"""Feature metrics of generated faces (the paper's CelebA study).

- **High-level feature**: an attribute classifier labels each image; the feature error is
  ``KL(reference || generated)`` between the attribute histograms, the reference histogram being
  computed once from data images with the same classifier. Any callable
  ``images (N, H, W, 3) uint8 -> labels (N,) int`` is a classifier (:class:`AttributeClassifier`).
- **Low-level feature**: the percentage of images in which a face detector finds no face.
  :class:`HaarCascadeDetector` works offline from OpenCV's bundled cascade
  (``opencv-python-headless`` < 5; OpenCV 5 no longer ships ``cv2.data.haarcascades``);
  :class:`YuNetDetector` (OpenCV's DNN detector, ONNX file supplied by the user) and
  :class:`MTCNNDetector` (``facenet-pytorch``, whose wheel bundles its weights) are optional
  heavier adapters.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

__all__ = [
    "AttributeClassifier",
    "FaceDetector",
    "attribute_histogram",
    "kl_divergence",
    "high_level_error",
    "no_face_percentage",
    "HaarCascadeDetector",
    "YuNetDetector",
    "MTCNNDetector",
    "make_detector",
    "load_images",
    "save_histogram",
    "load_histogram",
]


@runtime_checkable
class AttributeClassifier(Protocol):
    """``images (N, H, W, 3) uint8 RGB -> labels (N,)`` in ``range(num_classes)``."""

    num_classes: int

    def __call__(self, images: np.ndarray) -> np.ndarray: ...


@runtime_checkable
class FaceDetector(Protocol):
    """``image (H, W, 3) uint8 RGB -> number of faces found``."""

    def __call__(self, image: np.ndarray) -> int: ...


def attribute_histogram(labels: Iterable[int], num_classes: int) -> np.ndarray:
    """Normalised histogram of integer labels over ``range(num_classes)``."""
    labels = np.asarray(list(labels) if not isinstance(labels, np.ndarray) else labels)
    if labels.size == 0:
        raise ValueError("attribute_histogram: no labels")
    if labels.min() < 0 or labels.max() >= num_classes:
        raise ValueError(
            f"labels must lie in [0, {num_classes}), got [{labels.min()}, {labels.max()}]"
        )
    counts = np.bincount(labels.astype(np.int64), minlength=num_classes).astype(np.float64)
    return counts / counts.sum()


def kl_divergence(p: Sequence[float], q: Sequence[float], smoothing: float = 1e-6) -> float:
    """``KL(p || q) = sum_k p_k log(p_k / q_k)`` in nats.

    Both histograms get ``smoothing`` added to every bin and are renormalised, so a class the
    generated set never shows costs ``p_k log(p_k / smoothing)`` instead of infinity.
    """
    p = np.asarray(p, np.float64) + smoothing
    q = np.asarray(q, np.float64) + smoothing
    if p.shape != q.shape:
        raise ValueError(f"histograms differ in size: {p.shape} vs {q.shape}")
    p, q = p / p.sum(), q / q.sum()
    return float(np.sum(p * (np.log(p) - np.log(q))))


def high_level_error(
    images: np.ndarray, classifier: AttributeClassifier, reference: Sequence[float]
) -> float:
    """``KL(reference || histogram of classifier(images))``."""
    labels = np.asarray(classifier(images))
    return kl_divergence(reference, attribute_histogram(labels, classifier.num_classes))


def no_face_percentage(images: Iterable[np.ndarray], detector: FaceDetector) -> float:
    """``100 * #{images with detector(image) == 0} / #images``.

    ``detector`` must return a non-negative integer face count (``ValueError`` otherwise).
    """
    found = [detector(np.asarray(image)) for image in images]
    if not found:
        raise ValueError("no_face_percentage: no images")
    for i, count in enumerate(found):
        if isinstance(count, (bool, np.bool_)) or not isinstance(count, (int, np.integer)):
            raise ValueError(f"detector returned {count!r} for image {i}, need a face count")
        if count < 0:
            raise ValueError(f"detector returned {count} faces for image {i}, need >= 0")
    return 100.0 * sum(count == 0 for count in found) / len(found)


def _as_uint8_rgb(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[-1] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 RGB image, got {image.shape} {image.dtype}")
    return image


class HaarCascadeDetector:
    """OpenCV's frontal-face Haar cascade (Viola–Jones), bundled with ``opencv-python-headless``
    4.x.

    Args:
        cascade: a file name in ``cv2.data.haarcascades`` or a path to a cascade XML.
        scale_factor, min_neighbors, min_size_fraction: ``detectMultiScale`` settings; the minimum
            face size is ``min_size_fraction`` of the shorter image side (faces in CelebA-HQ
            fill most of the frame).
    """

    def __init__(
        self,
        cascade: str = "haarcascade_frontalface_default.xml",
        scale_factor: float = 1.1,
        min_neighbors: int = 5,
        min_size_fraction: float = 0.2,
    ) -> None:
        import cv2

        if not hasattr(cv2, "CascadeClassifier") or not hasattr(cv2, "data"):
            raise ImportError(
                f"OpenCV {cv2.__version__} has no CascadeClassifier/cv2.data.haarcascades "
                "(OpenCV 5 dropped them): install 'opencv-python-headless>=4.8,<5'"
            )
        path = Path(cascade)
        if not path.is_file():
            path = Path(cv2.data.haarcascades) / cascade
        if not path.is_file():
            raise FileNotFoundError(f"Haar cascade {cascade!r} not found (looked in {path.parent})")
        self._classifier = cv2.CascadeClassifier(str(path))
        if self._classifier.empty():
            raise RuntimeError(f"OpenCV could not load the cascade {path}")
        self._cv2 = cv2
        self.scale_factor = scale_factor
        self.min_neighbors = min_neighbors
        self.min_size_fraction = min_size_fraction

    def __call__(self, image: np.ndarray) -> int:
        image = _as_uint8_rgb(image)
        gray = self._cv2.cvtColor(image, self._cv2.COLOR_RGB2GRAY)
        side = max(1, int(self.min_size_fraction * min(gray.shape)))
        faces = self._classifier.detectMultiScale(
            gray,
            scaleFactor=self.scale_factor,
            minNeighbors=self.min_neighbors,
            minSize=(side, side),
        )
        return int(len(faces))


class YuNetDetector:
    """OpenCV's YuNet CNN detector (``cv2.FaceDetectorYN``, OpenCV >= 4.5.4).

    ``model_path``: the ``face_detection_yunet_*.onnx`` file (from the OpenCV model zoo, copied
    here by the user: nothing is downloaded).
    """

    def __init__(self, model_path: str | Path, score_threshold: float = 0.8) -> None:
        import cv2

        if not hasattr(cv2, "FaceDetectorYN"):
            raise ImportError(f"OpenCV {cv2.__version__} has no FaceDetectorYN (needs >= 4.5.4)")
        if not Path(model_path).is_file():
            raise FileNotFoundError(f"YuNet model {model_path} not found")
        self._cv2 = cv2
        self._detector = cv2.FaceDetectorYN.create(str(model_path), "", (320, 320), score_threshold)

    def __call__(self, image: np.ndarray) -> int:
        image = _as_uint8_rgb(image)
        bgr = self._cv2.cvtColor(image, self._cv2.COLOR_RGB2BGR)
        self._detector.setInputSize((bgr.shape[1], bgr.shape[0]))
        _, faces = self._detector.detect(bgr)
        return 0 if faces is None else int(len(faces))


class MTCNNDetector:
    """MTCNN from ``facenet-pytorch`` (weights ship inside its wheel); optional, CPU or CUDA."""

    def __init__(self, threshold: float = 0.9, device: str = "cpu") -> None:
        try:
            from facenet_pytorch import MTCNN
        except ImportError as err:
            raise ImportError(
                "MTCNNDetector needs 'facenet-pytorch' (pip install facenet-pytorch)"
            ) from err
        self._mtcnn = MTCNN(keep_all=True, device=device)
        self.threshold = threshold

    def __call__(self, image: np.ndarray) -> int:
        boxes, probs = self._mtcnn.detect(_as_uint8_rgb(image))
        return 0 if boxes is None else int(np.sum(np.asarray(probs) >= self.threshold))


def make_detector(name: str, model_path: str | None = None) -> FaceDetector:
    """A detector by name: ``haar`` (offline default), ``yunet`` (``model_path``), ``mtcnn``."""
    if name == "haar":
        return HaarCascadeDetector()
    if name == "yunet":
        if model_path is None:
            raise ValueError("the yunet detector needs --detector-model PATH.onnx")
        return YuNetDetector(model_path)
    if name == "mtcnn":
        return MTCNNDetector()
    raise ValueError(f"unknown detector {name!r} (haar, yunet, mtcnn)")


def load_images(folder: str | Path) -> np.ndarray:
    """Images of a sample folder: ``samples.npz`` (key ``images``, uint8 NHWC) else every ``*.png``
    except grids."""
    folder = Path(folder)
    npz = folder / "samples.npz"
    if npz.is_file():
        with np.load(npz) as data:
            return np.asarray(data["images"])
    from PIL import Image

    files = sorted(p for p in folder.glob("*.png") if not p.name.startswith("grid"))
    if not files:
        raise FileNotFoundError(f"no samples.npz and no PNG images in {folder}")
    return np.stack([np.asarray(Image.open(p).convert("RGB")) for p in files])


def save_histogram(
    path: str | Path,
    histogram: np.ndarray,
    classifier_name: str,
    counts: Sequence[int] | None = None,
) -> None:
    """Store a reference histogram as JSON: ``{"classifier", "histogram"}``, plus ``"counts"``
    (images per class) and ``"num_images"`` (their sum) when ``counts`` is given."""
    data: dict = {"classifier": classifier_name, "histogram": [float(v) for v in histogram]}
    if counts is not None:
        data["counts"] = [int(c) for c in counts]
        data["num_images"] = int(sum(data["counts"]))
    Path(path).write_text(json.dumps(data, indent=2))


def load_histogram(path: str | Path) -> np.ndarray:
    """A histogram written by :func:`save_histogram`."""
    return np.asarray(json.loads(Path(path).read_text())["histogram"], np.float64)
