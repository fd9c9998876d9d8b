"""Digit Scenes and Digit Events: embedded image- and video-captioning tasks (real handwriting,
no download) in which the words depend on which digits are where, and on what happens in which order.

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

:class:`DigitEvents` are video clips of two events in turn, each by its own digit: a digit
**moves** one cell left, right, up or down, **appears** in a cell or **leaves** a cell (it is
there, then it is not). References: ``"a 5 moves left then a 2 appears at the top"``, ``"first a
5 moves left , then a 2 appears at the top"`` and ``"a 2 appears at the top after a 5 moves
left"``. Which event comes first is only visible in the order of the frames.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from vidrnn.data.digits import _SPLITS, _split_digits

__all__ = ["DigitScenes", "DigitEvents", "CELL_NAMES", "scene_captions", "event_captions"]

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


class _GridDigits(Dataset):
    """What Digit Scenes and Digit Events share: the split's handwriting on a 3 x 3 grid of
    ``size`` pixels, items made on the fly by :meth:`make` (deterministic by seed and index)."""

    kind = "items"

    def __init__(self, split: str, num_samples: int, size: int, digit_size: int, seed: int):
        if split not in _SPLITS:
            raise ValueError(f"split={split!r}: expected one of {list(_SPLITS)}")
        if size % 3 or digit_size > size // 3:
            raise ValueError(f"size={size} must be a multiple of 3 with digit_size={digit_size} <= size / 3")
        self.split, self.num_samples, self.size, self.digit_size, self.seed = split, int(num_samples), size, digit_size, seed
        self._digits, self._classes = _split_digits(split, digit_size)
        self._split_id = list(_SPLITS).index(split)

    def __len__(self) -> int:
        return self.num_samples

    def make(self, i: int) -> dict:
        raise NotImplementedError

    def __getitem__(self, i: int) -> dict:
        if not 0 <= i < self.num_samples:
            raise IndexError(f"index {i} out of range for {self.num_samples} {self.kind}")
        return self.make(i)


class DigitScenes(_GridDigits):
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
        if not 2 <= min_digits <= max_digits <= 4:
            raise ValueError(f"min_digits, max_digits = {min_digits}, {max_digits}: expected 2 <= min <= max <= 4")
        super().__init__(split, num_samples, size, digit_size, seed)
        self.min_digits, self.max_digits = min_digits, max_digits

    kind = "images"

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



_MOVES = {"left": (0, -1), "right": (0, 1), "up": (-1, 0), "down": (1, 0)}


def _event_phrase(kind: str, digit: int, where: str) -> str:
    if kind == "moves":
        return f"a {digit} moves {where}"
    if kind == "appears":
        return f"a {digit} appears {_place(where)}"
    return f"a {digit} leaves the {where}"


def event_captions(events: list[tuple[str, int, str]]) -> list[str]:
    """The reference captions of two events ``(kind, digit, direction or cell name)`` in order."""
    first, second = (_event_phrase(*e) for e in events)
    return [f"{first} then {second}", f"first {first} , then {second}", f"{second} after {first}"]


class DigitEvents(_GridDigits):
    """Clips of two events by two real handwritten digits, with grammar captions (see the module docstring).

    Args:
        split: ``"train"``, ``"val"`` or ``"test"`` (disjoint handwriting).
        num_samples: clips in this split.
        num_frames: T, frames per clip (even, >= 4): the first event happens in the first half,
            the second in the second half.
        size: frame side in pixels (S, a multiple of 3).
        digit_size: side of each digit in pixels (at most S / 3).
        seed: base seed; clip ``i`` is the same for the same ``(seed, split, i)``.

    Items: ``{"video": float (T, 3, S, S) in [0, 1], "captions": [3 reference strings],
    "events": [(kind, digit, where), ...], "index": i}``.

    Raises:
        ValueError: an unknown split or sizes that do not fit.
    """

    def __init__(self, split: str = "train", num_samples: int = 2000, *, num_frames: int = 8, size: int = 48,
                 digit_size: int = 14, seed: int = 0):
        if num_frames < 4 or num_frames % 2:
            raise ValueError(f"num_frames={num_frames}: expected an even number >= 4")
        super().__init__(split, num_samples, size, digit_size, seed)
        self.num_frames = int(num_frames)

    kind = "clips"

    def make(self, i: int) -> dict:
        """Clip ``i`` with its captions (see the class docstring)."""
        rng = np.random.default_rng([self.seed, 11, self._split_id, i])
        T, S, D, cell = self.num_frames, self.size, self.digit_size, self.size // 3
        half = T // 2
        free = set(range(9))
        events, tracks = [], []  # tracks: per digit, its top-left corner per frame or None (not shown)
        for k in range(2):
            kind = ("moves", "appears", "leaves")[int(rng.integers(3))]
            p = int(rng.integers(len(self._digits)))
            jitter = rng.integers(0, cell - D + 1, size=2)
            lo, hi = k * half, (k + 1) * half
            if kind == "moves":
                options = [(c, d) for c in sorted(free) for d, (dy, dx) in _MOVES.items()
                           if 0 <= c // 3 + dy < 3 and 0 <= c % 3 + dx < 3 and (c // 3 + dy) * 3 + c % 3 + dx in free]
                c, d = options[int(rng.integers(len(options)))]
                dy, dx = _MOVES[d]
                target = (c // 3 + dy) * 3 + c % 3 + dx
                free -= {c, target}
                y0, x0 = (c // 3) * cell + jitter[0], (c % 3) * cell + jitter[1]
                track = []
                for t in range(T):
                    f = min(max((t - lo) / (hi - 1 - lo), 0.0), 1.0)  # 0 before the event, 1 after
                    track.append((int(round(y0 + f * dy * cell)), int(round(x0 + f * dx * cell))))
                where = d
            else:
                c = sorted(free)[int(rng.integers(len(free)))]
                free.discard(c)
                yx = ((c // 3) * cell + int(jitter[0]), (c % 3) * cell + int(jitter[1]))
                switch = lo + half // 2  # the frame at which it appears / from which it is gone
                track = [yx if (t >= switch) == (kind == "appears") else None for t in range(T)]
                where = CELL_NAMES[c]
            colour = torch.from_numpy(rng.uniform(0.5, 1.0, size=3).astype(np.float32))
            tracks.append((self._digits[p][None] * colour[:, None, None], track))
            events.append((kind, int(self._classes[p]), where))
        video = torch.zeros(T, 3, S, S)
        for sprite, track in tracks:
            for t, yx in enumerate(track):
                if yx is not None:
                    y, x = yx
                    video[t, :, y:y + D, x:x + D] = torch.maximum(video[t, :, y:y + D, x:x + D], sprite)
        return {"video": video, "captions": event_captions(events), "events": events, "index": i}

