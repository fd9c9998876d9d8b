"""Digit Scenes: an embedded image-captioning task (real handwriting, no download) in which the
words depend on which digits are where.

Each image shows 2-4 of scikit-learn's real handwritten digits (the pools of
:mod:`vidrnn.data.digits`: train, val and test use disjoint handwriting) in distinct cells of a
3 x 3 grid, each at a small random offset inside its cell and in its own colour. The captions
come from a small grammar over the cells' names (``top left``, ``top``, ``top right``,
``left``, ``middle``, ``right``, ``bottom left``, ``bottom``, ``bottom right``), with several
paraphrases per image as references:

* reading order: ``"a 3 at the top left and a 7 in the middle"``;
* reverse reading order: ``"a 7 in the middle and a 3 at the top left"``;
* counted, listed from top to bottom: ``"two digits : a 3 above a 7"`` (two digits) or
  ``"three digits : 3 , 7 and 1 from top to bottom"`` (more).

A model that ignores where the digits are cannot say the places; one that ignores the order of
words cannot say the relation. Images are a deterministic function of ``(seed, split, index)``.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from vidrnn.data.digits import _SPLITS, _split_digits

__all__ = ["DigitScenes", "CELL_NAMES"]

CELL_NAMES = ("top left", "top", "top right", "left", "middle", "right", "bottom left", "bottom", "bottom right")
_COUNT = {2: "two", 3: "three", 4: "four"}


def _place(name: str) -> str:
    return f"in the {name}" if name == "middle" else f"at the {name}"


def _listing(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else " , ".join(parts[:-1]) + " and " + parts[-1]


def scene_captions(cells: list[int], digits: list[int]) -> list[str]:
    """The reference captions of digits ``digits`` placed in grid cells ``cells`` (0-8, row-major)."""
    order = sorted(range(len(cells)), key=lambda k: cells[k])  # reading order: row, then column
    named = [f"a {digits[k]} {_place(CELL_NAMES[cells[k]])}" for k in order]
    refs = [_listing(named), _listing(named[::-1])]
    if len(cells) == 2:
        top, bottom = order
        if cells[top] // 3 == cells[bottom] // 3:  # same row: left/right
            refs.append(f"two digits : a {digits[top]} left of a {digits[bottom]}")
        else:
            refs.append(f"two digits : a {digits[top]} above a {digits[bottom]}")
    else:
        refs.append(f"{_COUNT[len(cells)]} digits : {_listing([str(digits[k]) for k in order])} from top to bottom")
    return refs


class DigitScenes(Dataset):
    """Images of 2-4 real handwritten digits on a 3 x 3 grid, with grammar captions.

    Args:
        split: ``"train"``, ``"val"`` or ``"test"`` (disjoint handwriting).
        num_samples: images in this split.
        size: image side in pixels (S, a multiple of 3).
        digit_size: side of each digit in pixels (at most S / 3).
        min_digits, max_digits: digits per image (2-4).
        seed: base seed; image ``i`` is the same for the same ``(seed, split, i)``.

    Items: ``{"image": float (3, S, S) in [0, 1], "captions": [3 reference strings],
    "cells": [grid cell per digit], "digits": [class per digit], "index": i}``.

    Raises:
        ValueError: an unknown split or sizes that do not fit.
    """

    def __init__(self, split: str = "train", num_samples: int = 2000, *, size: int = 48, digit_size: int = 14,
                 min_digits: int = 2, max_digits: int = 4, seed: int = 0):
        if split not in _SPLITS:
            raise ValueError(f"split={split!r}: expected one of {list(_SPLITS)}")
        if size % 3 or digit_size > size // 3:
            raise ValueError(f"size={size} must be a multiple of 3 with digit_size={digit_size} <= size / 3")
        if not 2 <= min_digits <= max_digits <= 4:
            raise ValueError(f"min_digits, max_digits = {min_digits}, {max_digits}: expected 2 <= min <= max <= 4")
        self.split, self.num_samples, self.size, self.digit_size = split, int(num_samples), size, digit_size
        self.min_digits, self.max_digits, self.seed = min_digits, max_digits, seed
        self._digits, self._classes = _split_digits(split, digit_size)
        self._split_id = list(_SPLITS).index(split)

    def __len__(self) -> int:
        return self.num_samples

    def make(self, i: int) -> dict:
        """Image ``i`` with its captions (see the class docstring)."""
        rng = np.random.default_rng([self.seed, 7, self._split_id, i])
        n = int(rng.integers(self.min_digits, self.max_digits + 1))
        cells = [int(c) for c in rng.choice(9, size=n, replace=False)]
        picks = rng.integers(len(self._digits), size=n)
        S, D, cell = self.size, self.digit_size, self.size // 3
        image = torch.zeros(3, S, S)
        for c, p in zip(cells, picks):
            y = (c // 3) * cell + int(rng.integers(0, cell - D + 1))
            x = (c % 3) * cell + int(rng.integers(0, cell - D + 1))
            colour = torch.from_numpy(rng.uniform(0.5, 1.0, size=3).astype(np.float32))
            image[:, y:y + D, x:x + D] = torch.maximum(image[:, y:y + D, x:x + D],
                                                       self._digits[p][None] * colour[:, None, None])
        digits = [int(self._classes[p]) for p in picks]
        return {"image": image, "captions": scene_captions(cells, digits), "cells": cells, "digits": digits,
                "index": i}

    def __getitem__(self, i: int) -> dict:
        if not 0 <= i < self.num_samples:
            raise IndexError(f"index {i} out of range for {self.num_samples} images")
        return self.make(i)
