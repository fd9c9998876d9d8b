"""Moving Digits: the embedded default dataset (real handwriting, no download).

Each clip shows one of scikit-learn's 1797 real handwritten 8x8 digits (UCI optical
recognition of handwritten digits, shipped inside the scikit-learn wheel), scaled up and
moving in a straight line across a dark canvas. The class is the direction of motion:
``right``, ``left``, ``down``, ``up``. Every single frame of a "right" clip could also appear
in a "left" clip; only the order of the frames tells them apart, so order-blind models
(per-frame averaging) cannot beat about 50% while recurrent models can reach 100%.

Clips are a deterministic function of ``(seed, split, index)``. The splits use disjoint
digit images (train: digits 0-1199, val: 1200-1499, test: 1500-1796), so the test set shows
handwriting never seen in training.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

__all__ = ["MovingDigits", "DistractorDigits", "MultiLabelDigits", "DIRECTIONS"]

DIRECTIONS = ("right", "left", "down", "up")
_VELOCITY = {0: (0, 1), 1: (0, -1), 2: (1, 0), 3: (-1, 0)}  # (dy, dx) per class
_SPLITS = {"train": (0, 1200), "val": (1200, 1500), "test": (1500, 1797)}


def _split_digits(split: str, digit_size: int) -> tuple[torch.Tensor, np.ndarray]:
    """The split's handwritten digits scaled to ``digit_size`` pixels, ``(N, D, D)`` in [0, 1],
    and their classes ``(N,)``."""
    from sklearn.datasets import load_digits

    data = load_digits()
    lo, hi = _SPLITS[split]
    digits = torch.from_numpy(data.images.astype(np.float32)[lo:hi] / 16.0)[:, None]  # (N, 1, 8, 8)
    digits = F.interpolate(digits, size=(digit_size, digit_size), mode="bilinear", align_corners=False)[:, 0]
    return digits, data.target[lo:hi]


class MovingDigits(Dataset):
    """Real handwritten digits moving left/right/up/down; the label is the direction (only motion
    tells the classes apart) or, with ``label="digit"``, the digit (only appearance does; the
    direction is random).

    Args:
        split: ``"train"``, ``"val"`` or ``"test"`` (disjoint digit images).
        num_samples: clips in this split.
        num_frames: frames per clip (T).
        size: canvas side in pixels (S).
        digit_size: side of the scaled digit in pixels.
        seed: base seed; clip ``i`` is the same for the same ``(seed, split, i)``.
        label: ``"direction"`` (classes :data:`DIRECTIONS`) or ``"digit"`` (classes "0"-"9").

    Items: ``{"video": float (1, T, 3, S, S) in [0, 1], "label": int, "index": int}`` (one
    view), the same format as :class:`vidrnn.data.VideoClipDataset`.

    Raises:
        ValueError: unknown split, or a digit path that cannot fit the canvas.
    """

    classes = list(DIRECTIONS)
    LABELS = {"direction": list(DIRECTIONS), "digit": [str(d) for d in range(10)]}

    def __init__(self, split: str = "train", num_samples: int = 2000, *, num_frames: int = 8,
                 size: int = 32, digit_size: int = 12, seed: int = 0, label: str = "direction"):
        if split not in _SPLITS:
            raise ValueError(f"split={split!r}: expected one of {list(_SPLITS)}")
        if label not in self.LABELS:
            raise ValueError(f"label={label!r}: expected one of {list(self.LABELS)}")
        self.label, self.classes = label, self.LABELS[label]
        if size < digit_size + 2 * num_frames:
            raise ValueError(f"size={size} too small for digit_size={digit_size} moving {num_frames} frames")
        self.split, self.num_samples = split, int(num_samples)
        self.num_frames, self.size, self.digit_size, self.seed = num_frames, size, digit_size, seed
        self._digits, self._digit_classes = _split_digits(split, digit_size)
        self._split_id = list(_SPLITS).index(split)

    def __len__(self) -> int:
        return self.num_samples

    def make(self, i: int) -> tuple[torch.Tensor, int]:
        """Clip ``i`` as float ``(T, 3, S, S)`` and its label."""
        rng = np.random.default_rng([self.seed, self._split_id, i])
        direction = int(rng.integers(len(DIRECTIONS)))
        pick = rng.integers(len(self._digits))
        digit = self._digits[pick]
        label = direction if self.label == "direction" else int(self._digit_classes[pick])
        T, S, D = self.num_frames, self.size, self.digit_size
        speed = int(rng.integers(1, (S - D) // (T - 1) + 1)) if T > 1 else 0
        travel = speed * (T - 1)
        dy, dx = _VELOCITY[direction]
        # Start so that the whole path stays on the canvas; the cross-axis position is free.
        y0 = int(rng.integers(0, S - D + 1 - (travel if dy else 0))) + (travel if dy < 0 else 0)
        x0 = int(rng.integers(0, S - D + 1 - (travel if dx else 0))) + (travel if dx < 0 else 0)
        colour = torch.from_numpy(rng.uniform(0.5, 1.0, size=3).astype(np.float32))
        video = torch.zeros(T, 3, S, S)
        for t in range(T):
            y, x = y0 + dy * speed * t, x0 + dx * speed * t
            video[t, :, y:y + D, x:x + D] = digit[None] * colour[:, None, None]
        return video, label

    def __getitem__(self, i: int) -> dict:
        if not 0 <= i < self.num_samples:
            raise IndexError(f"index {i} out of range for {self.num_samples} clips")
        video, label = self.make(i)
        return {"video": video[None], "label": label, "index": i}


class DistractorDigits(Dataset):
    """A task where looking in the right place matters: one digit moves among still distractors.

    Each clip shows ``num_distractors`` still digits and one *target* digit moving in a straight
    line (random direction, 1-3 pixels per frame); the label is the target's digit class (0-9).
    Every digit is one of scikit-learn's real handwritten digits, so a frame alone does not say
    which digit is the target: a model must find the moving one and look at it. Items also
    carry the target's box per frame, for measuring where spatial attention goes
    (:func:`vidrnn.metrics.attention.attention_mass_ratio`). Deterministic in ``(seed, split,
    index)``; splits use disjoint digit images, as :class:`MovingDigits`.

    Args:
        split: ``"train"``, ``"val"`` or ``"test"``.
        num_samples: clips in this split.
        num_frames: T. size: canvas side S (pixels). digit_size: digit side (pixels).
        num_distractors: still digits per clip.
        seed: base seed.

    Items: ``{"video": (1, T, 3, S, S) in [0, 1], "label": int, "index": int, "box": float
    (T, 4) target box (y0, x0, y1, x1) in pixels, end-exclusive}``.

    Raises:
        ValueError: unknown split, or a canvas too small for the digits.
    """

    classes = [str(d) for d in range(10)]

    def __init__(self, split: str = "train", num_samples: int = 2000, *, num_frames: int = 8, size: int = 40,
                 digit_size: int = 12, num_distractors: int = 2, seed: int = 0):
        if split not in _SPLITS:
            raise ValueError(f"split={split!r}: expected one of {list(_SPLITS)}")
        if size < 2 * digit_size:
            raise ValueError(f"size={size} too small for digit_size={digit_size} (need >= {2 * digit_size})")
        self._digits, self._labels = _split_digits(split, digit_size)
        self.split, self.num_samples, self.num_frames = split, int(num_samples), num_frames
        self.size, self.digit_size, self.num_distractors, self.seed = size, digit_size, num_distractors, seed
        self._split_id = list(_SPLITS).index(split)

    def __len__(self) -> int:
        return self.num_samples

    def make(self, i: int) -> tuple[torch.Tensor, int, torch.Tensor]:
        """Clip ``i``: ``(video (T, 3, S, S), label, box (T, 4))``."""
        rng = np.random.default_rng([self.seed, 100 + self._split_id, i])
        T, S, D = self.num_frames, self.size, self.digit_size
        picks = rng.integers(len(self._digits), size=1 + self.num_distractors)
        label = int(self._labels[picks[0]])
        speed = rng.uniform(1.0, 3.0)
        theta = rng.uniform(0, 2 * np.pi)
        vy, vx = speed * np.sin(theta), speed * np.cos(theta)
        span_y, span_x = abs(vy) * (T - 1), abs(vx) * (T - 1)
        y0 = rng.uniform(0, S - D - span_y) + (span_y if vy < 0 else 0)
        x0 = rng.uniform(0, S - D - span_x) + (span_x if vx < 0 else 0)
        still = rng.integers(0, S - D + 1, size=(self.num_distractors, 2))
        colours = rng.uniform(0.6, 1.0, size=(1 + self.num_distractors, 3)).astype(np.float32)
        video = torch.zeros(T, 3, S, S)
        box = torch.zeros(T, 4)
        for t in range(T):
            frame = video[t]
            for k, (y, x) in enumerate(still, start=1):
                patch = self._digits[picks[k]][None] * torch.from_numpy(colours[k])[:, None, None]
                frame[:, y:y + D, x:x + D] = torch.maximum(frame[:, y:y + D, x:x + D], patch)
            y, x = int(round(y0 + vy * t)), int(round(x0 + vx * t))
            patch = self._digits[picks[0]][None] * torch.from_numpy(colours[0])[:, None, None]
            frame[:, y:y + D, x:x + D] = torch.maximum(frame[:, y:y + D, x:x + D], patch)
            box[t] = torch.tensor([y, x, y + D, x + D], dtype=torch.float32)
        return video, label, box

    def __getitem__(self, i: int) -> dict:
        if not 0 <= i < self.num_samples:
            raise IndexError(f"index {i} out of range for {self.num_samples} clips")
        video, label, box = self.make(i)
        return {"video": video[None], "label": label, "index": i, "box": box}


class MultiLabelDigits(Dataset):
    """Dense multi-label detection on the embedded digits (in the manner of MultiTHUMOS).

    Each clip holds 1 to ``max_events`` *events*: a handwritten digit (distinct classes 0-9
    within a clip) shown in its own quadrant of the canvas from frame ``start`` to ``end``
    (3 to ``max_duration`` frames; events overlap in time). While an event lasts, its digit
    is hidden in a frame with probability ``occlusion`` (never in its first frame), but its
    label stays on: labelling a frame where the digit is hidden takes memory of the recent
    frames, which is what a temporal attention window over recent frames is for.

    Labels are multi-hot over the 10 digit classes: ``frame_labels[t, c] = 1`` while an event
    of class ``c`` lasts at frame ``t``; the video label is their union over time.
    Deterministic in ``(seed, split, index)``; splits use disjoint digit images, as
    :class:`MovingDigits`.

    Args:
        split: ``"train"``, ``"val"`` or ``"test"``.
        num_samples: clips in this split.
        num_frames: T (>= 3). size: canvas side S (pixels, >= 2 x digit_size). digit_size:
        digit side. max_events: events per clip (1-4, one per quadrant). max_duration: longest
        event in frames. occlusion: probability that an event's digit is hidden in a frame.
        seed: base seed.

    Items: ``{"video": (1, T, 3, S, S) in [0, 1], "label": float (10,) multi-hot, "frame_labels":
    float (1, T, 10), "index": int}`` (one view, as the video).

    Raises:
        ValueError: unknown split or inconsistent sizes.
    """

    classes = [str(d) for d in range(10)]
    multilabel = True

    def __init__(self, split: str = "train", num_samples: int = 2000, *, num_frames: int = 16, size: int = 32,
                 digit_size: int = 14, max_events: int = 3, max_duration: int = 8, occlusion: float = 0.4,
                 seed: int = 0):
        if split not in _SPLITS:
            raise ValueError(f"split={split!r}: expected one of {list(_SPLITS)}")
        if num_frames < 3:
            raise ValueError(f"num_frames={num_frames}: need at least 3 frames per clip")
        if size < 2 * digit_size:
            raise ValueError(f"size={size} too small for four quadrants of digit_size={digit_size}")
        if not 1 <= max_events <= 4:
            raise ValueError(f"max_events={max_events}: expected 1-4 (one event per quadrant)")
        if not 3 <= max_duration:
            raise ValueError(f"max_duration={max_duration}: expected >= 3 frames")
        if not 0.0 <= occlusion < 1.0:
            raise ValueError(f"occlusion={occlusion}: expected a probability in [0, 1)")
        self._digits, labels = _split_digits(split, digit_size)
        self._by_class = [np.flatnonzero(labels == c) for c in range(10)]
        self.split, self.num_samples, self.num_frames, self.size = split, int(num_samples), num_frames, size
        self.digit_size, self.max_events, self.max_duration = digit_size, max_events, max_duration
        self.occlusion, self.seed = occlusion, seed
        self._split_id = list(_SPLITS).index(split)

    def __len__(self) -> int:
        return self.num_samples

    def make(self, i: int, return_visible: bool = False):
        """Clip ``i``: ``(video (T, 3, S, S), frame_labels (T, 10))``, and with
        ``return_visible`` also ``visible`` bool ``(T, 10)``: the class's digit is drawn."""
        rng = np.random.default_rng([self.seed, 200 + self._split_id, i])
        T, S, D = self.num_frames, self.size, self.digit_size
        n = int(rng.integers(1, self.max_events + 1))
        classes = rng.choice(10, size=n, replace=False)
        quadrants = rng.permutation(4)[:n]
        video = torch.zeros(T, 3, S, S)
        frame_labels = torch.zeros(T, 10)
        visible = torch.zeros(T, 10, dtype=torch.bool)
        half = S // 2
        for c, q in zip(classes, quadrants):
            digit = self._digits[rng.choice(self._by_class[c])]
            colour = torch.from_numpy(rng.uniform(0.6, 1.0, size=3).astype(np.float32))[:, None, None]
            duration = int(rng.integers(3, min(self.max_duration, T) + 1))
            start = int(rng.integers(0, T - duration + 1))
            y = (q // 2) * half + int(rng.integers(0, half - D + 1))
            x = (q % 2) * half + int(rng.integers(0, half - D + 1))
            shown = rng.random(duration) >= self.occlusion
            shown[0] = True
            frame_labels[start:start + duration, c] = 1.0
            for t in range(start, start + duration):
                if shown[t - start]:
                    video[t, :, y:y + D, x:x + D] = digit[None] * colour
                    visible[t, c] = True
        return (video, frame_labels, visible) if return_visible else (video, frame_labels)

    def __getitem__(self, i: int) -> dict:
        if not 0 <= i < self.num_samples:
            raise IndexError(f"index {i} out of range for {self.num_samples} clips")
        video, frame_labels = self.make(i)
        return {"video": video[None], "label": frame_labels.amax(0), "frame_labels": frame_labels[None], "index": i}
