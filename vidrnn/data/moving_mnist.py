"""Moving MNIST: bouncing handwritten digits for video prediction.

Sources:
    * N. Srivastava, E. Mansimov, R. Salakhutdinov, "Unsupervised Learning of Video
      Representations using LSTMs", ICML 2015, arXiv:1502.04681 -- the dataset and its
      reference generator (``BouncingMNISTDataHandler`` in the authors' ``data_handler.py``):
      64x64 canvas, two 28x28 MNIST digits, 20 frames (10 input, 10 to predict), and the fixed
      test set ``mnist_test_seq.npy`` (20 x 10000 x 64 x 64 uint8).
    * X. Shi, Z. Chen, H. Wang, D.-Y. Yeung, W.-K. Wong, W.-C. Woo, "Convolutional LSTM
      Network: A Machine Learning Approach for Precipitation Nowcasting", NeurIPS 2015,
      arXiv:1506.04214 -- Moving MNIST as the first ConvLSTM benchmark (10 -> 10 frames,
      cross-entropy per sequence, see :mod:`vidrnn.metrics.forecasting`).
    * Y. LeCun, C. Cortes, "The MNIST database of handwritten digits" -- the IDX file format
      read by :func:`read_idx`.

The generator (:meth:`MovingMNIST.generate`) follows the reference one: positions live in
units of the free range ``size - digit_size`` (36 pixels for 28x28 digits on 64x64), each digit
starts at a uniform position in ``[0, 1]^2`` with a uniform random direction ``theta`` and
velocity ``step_length * (sin theta, cos theta)`` (row, column); every frame it takes one step,
and where a coordinate leaves ``[0, 1]`` it is clamped and that velocity component flips
(a bounce). As in the reference, the step is taken before a frame is recorded, so frame 0 is
already one step from the drawn start. Digits are pasted at their top-left pixel and overlaps
combine by pixel-wise maximum.

Deviations from the reference generator:
    * The pixel position is ``round(position * free_range)``; the reference truncates
      (``astype(int32)``), which biases digits half a pixel towards the top-left.
    * Digits are drawn independently with replacement per sequence; the reference walks
      through a shuffled permutation of the digit set. Drawing per sequence is what makes
      item ``i`` a function of ``(seed, i)`` alone.
    * The digit size is read from the ``digits`` array (28 for MNIST) instead of hard-coded.

Getting the data (this package never downloads on its own):
    * MNIST digits: ``load_mnist_digits(root, download=True)`` uses torchvision's downloader,
      or put ``t10k-images-idx3-ubyte.gz`` / ``train-images-idx3-ubyte.gz`` in a folder.
    * The standard fixed test set: http://www.cs.toronto.edu/~nitish/unsupervised_video/mnist_test_seq.npy
      (about 820 MB), read by :class:`MovingMNISTNpy`.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from vidrnn.io.files import read_maybe_gzip

__all__ = ["read_idx", "load_mnist_digits", "MovingMNIST", "MovingMNISTNpy", "MNIST_TEST_SEQ_URL"]

MNIST_TEST_SEQ_URL = "http://www.cs.toronto.edu/~nitish/unsupervised_video/mnist_test_seq.npy"

# IDX type codes (third byte of the magic number) -> big-endian numpy dtype.
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_MNIST_IMAGE_FILES = {False: "t10k-images-idx3-ubyte", True: "train-images-idx3-ubyte"}


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (the MNIST format), plain or gzip-compressed.

    The IDX header is a big-endian magic number ``0x00 0x00 <type> <ndim>`` followed by
    ``ndim`` big-endian int32 sizes, then the data in C order. Gzip compression is detected
    from the file's content, not its name.

    Args:
        path: the ``.idx``/``-ubyte`` file, optionally ``.gz``.

    Returns:
        The array in native byte order, e.g. ``(10000, 28, 28)`` uint8 for
        ``t10k-images-idx3-ubyte``.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: the magic number is not an IDX one, or the data is shorter or longer
            than the header says.
    """
    path = Path(path)
    raw = read_maybe_gzip(path, "IDX file")
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES or raw[3] == 0:
        found = raw[:4].hex() or "an empty file"
        raise ValueError(f"{path}: not an IDX file: expected magic number 0x0000<type><ndim> with type in "
                         f"{sorted(hex(k) for k in _IDX_DTYPES)} and ndim >= 1, found {found}")
    dtype, ndim = np.dtype(_IDX_DTYPES[raw[2]]), raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{path}: IDX header says {ndim} dimensions but the file ends after {len(raw)} bytes")
    shape = tuple(int(s) for s in np.frombuffer(raw, ">i4", count=ndim, offset=4))
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) - header != expected:
        raise ValueError(f"{path}: IDX header says shape {shape} of {dtype.name} ({expected} bytes of data), "
                         f"found {len(raw) - header} bytes")
    data = np.frombuffer(raw, dtype, offset=header).reshape(shape)
    return data.astype(dtype.newbyteorder("="))  # native byte order, writable copy


def _default_mnist_dir() -> Path:
    """``$VIDRNN_SHARED_DATA/mnist``, default ``<repo>/../shared/data/mnist``."""
    repo = Path(__file__).resolve().parents[2]
    return Path(os.environ.get("VIDRNN_SHARED_DATA", repo.parent / "shared" / "data")) / "mnist"


def load_mnist_digits(root: str | os.PathLike | None = None, *, train: bool = False,
                      download: bool = False) -> np.ndarray:
    """Load the MNIST digit images as a uint8 array.

    Looks for ``t10k-images-idx3-ubyte`` (``train=False``, 10,000 images) or
    ``train-images-idx3-ubyte`` (``train=True``, 60,000 images), plain or ``.gz``, in
    ``root``, then in ``root/MNIST/raw`` (torchvision's layout). With ``root=None`` it looks in
    ``$VIDRNN_SHARED_DATA/mnist`` (default ``<repo>/../shared/data/mnist``).

    Args:
        root: folder holding the IDX files, or ``None`` for the shared data folder.
        train: the 60k training images instead of the 10k test images.
        download: when the file is not found, download it with
            ``torchvision.datasets.MNIST(root, train=train, download=True)`` (needs
            ``root``, torchvision and internet access).

    Returns:
        Digits ``(N, 28, 28)`` uint8, 0 = background, 255 = ink.

    Shape:
        Output: ``(N, 28, 28)`` pixels, N = 10000 (test) or 60000 (train).

    Raises:
        FileNotFoundError: the file is in none of the searched folders and ``download`` is
            False; the message lists the folders and how to get the files.
        ValueError: ``download=True`` without ``root``, or the file is not ``(N, 28, 28)``
            uint8 IDX data.
        ImportError: ``download=True`` but torchvision is not installed.
    """
    name = _MNIST_IMAGE_FILES[bool(train)]
    if root is None:
        if download:
            raise ValueError("load_mnist_digits(download=True) needs root=<folder to download MNIST into>")
        folders = [_default_mnist_dir()]
    else:
        folders = [Path(root), Path(root) / "MNIST" / "raw"]
    for folder in folders:
        for candidate in (folder / name, folder / f"{name}.gz"):
            if candidate.is_file():
                images = read_idx(candidate)
                if images.ndim != 3 or images.shape[1:] != (28, 28) or images.dtype != np.uint8:
                    raise ValueError(f"{candidate}: expected MNIST images (N, 28, 28) uint8, "
                                     f"found {images.shape} {images.dtype}")
                return images
    if download:
        try:
            from torchvision.datasets import MNIST
        except ImportError as e:
            raise ImportError("load_mnist_digits(download=True) needs torchvision: pip install torchvision") from e
        ds = MNIST(str(root), train=bool(train), download=True)
        return ds.data.numpy().astype(np.uint8)  # (N, 28, 28)
    looked = ", ".join(str(f) for f in folders)
    raise FileNotFoundError(
        f"MNIST images {name}[.gz] not found; looked in: {looked}. Get them with "
        f"load_mnist_digits(root, download=True) (torchvision), or download {name}.gz from a MNIST mirror "
        f"(e.g. https://ossci-datasets.s3.amazonaws.com/mnist/{name}.gz) into one of those folders"
        + (", or set VIDRNN_SHARED_DATA to a folder containing mnist/" if root is None else ""))


def _check_positive_int(name: str, value, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name}={value!r}: expected an integer >= {minimum}")
    return int(value)


class MovingMNIST(Dataset):
    """Moving MNIST sequences generated from digit images (Srivastava et al. 2015).

    Each sequence shows ``num_digits`` digits bouncing inside a ``size`` x ``size`` canvas
    (see the module docstring for the motion model). The first ``num_input`` frames are the
    input, the next ``num_output`` the target.

    Randomness:
        * ``fixed=True`` (evaluation): item ``i`` is a deterministic function of
          ``(seed, i)``: it is generated from ``np.random.default_rng([seed, i])``, so the
          whole set is fixed by ``seed`` whatever the order, workers or epoch.
        * ``fixed=False`` (training on the fly): every call draws a fresh sequence from a
          generator owned by the current process, seeded with ``np.random.SeedSequence([seed,
          torch.initial_seed()], spawn_key=(1,))`` (a stream apart from the fixed items'),
          created on first use in that process and re-created when the process id or torch's
          initial seed changes. The DataLoader seeds each worker's
          torch RNG with ``base_seed + worker_id`` and draws a new ``base_seed`` from the main
          process's torch RNG every epoch, so workers and epochs get different sequences, and
          a run is reproducible once the torch seed is fixed (``lightning.seed_everything``).
          Without workers the main process's generator simply continues from epoch to epoch;
          persistent workers likewise continue their streams. Outside a DataLoader, processes
          that share torch's initial seed share the stream: call ``torch.manual_seed`` per
          process. The index is ignored except for the range check; ``len`` is the epoch
          length.

    Args:
        digits: digit images ``(N, D, D)`` uint8 (e.g. :func:`load_mnist_digits`, D = 28).
        num_sequences: length of the dataset (the epoch length when ``fixed=False``).
        num_input: input frames per sequence.
        num_output: target frames per sequence.
        num_digits: digits per sequence.
        size: canvas side in pixels (>= D).
        step_length: distance per frame as a fraction of the free range ``size - D``
            (0.1 -> 3.6 pixels/frame for 28x28 digits on 64x64).
        seed: base seed.
        fixed: deterministic items (evaluation) or fresh random ones (training).

    Items:
        ``{"input": float32 (num_input, 1, size, size), "target": float32 (num_output, 1,
        size, size)}``, intensities in [0, 1] (uint8 / 255).

    Shape:
        - input: ``(num_input, 1, size, size)`` frames x channel x pixels.
        - target: ``(num_output, 1, size, size)``.

    Raises:
        ValueError: ``digits`` not a non-empty ``(N, D, D)`` uint8 array, ``size < D``, a
            non-positive count, or a negative/non-finite ``step_length``.
    """

    def __init__(self, digits, num_sequences: int, *, num_input: int = 10, num_output: int = 10,
                 num_digits: int = 2, size: int = 64, step_length: float = 0.1, seed: int = 0,
                 fixed: bool = True):
        if isinstance(digits, torch.Tensor):
            digits = digits.detach().cpu().numpy()
        digits = np.asarray(digits)
        if digits.ndim != 3 or digits.shape[0] == 0 or digits.shape[1] != digits.shape[2] or digits.dtype != np.uint8:
            raise ValueError(f"digits: expected a non-empty (N, D, D) uint8 array of square digit images "
                             f"(e.g. MNIST (N, 28, 28)), found shape {digits.shape} dtype {digits.dtype}")
        self.num_sequences = _check_positive_int("num_sequences", num_sequences)
        self.num_input = _check_positive_int("num_input", num_input)
        self.num_output = _check_positive_int("num_output", num_output)
        self.num_digits = _check_positive_int("num_digits", num_digits)
        self.digit_size = int(digits.shape[1])
        self.size = _check_positive_int("size", size, self.digit_size)
        if not np.isfinite(step_length) or step_length < 0:
            raise ValueError(f"step_length={step_length!r}: expected a finite fraction of the free range >= 0")
        self.step_length = float(step_length)
        self.seed = _check_positive_int("seed", seed, 0)
        self.fixed = bool(fixed)
        self.digits = np.ascontiguousarray(digits)
        self.free_range = self.size - self.digit_size  # pixels a digit can travel along each axis
        self._rng: np.random.Generator | None = None
        self._rng_key: tuple[int, int] | None = None

    @property
    def num_frames(self) -> int:
        """Frames per sequence (input + target)."""
        return self.num_input + self.num_output

    def __len__(self) -> int:
        return self.num_sequences

    def _process_rng(self) -> np.random.Generator:
        """The ``fixed=False`` generator of this process/worker (see the class docstring)."""
        key = (torch.initial_seed(), os.getpid())
        if self._rng is None or self._rng_key != key:
            # spawn_key keeps this stream apart from the fixed items' default_rng([seed, i]).
            self._rng = np.random.default_rng(np.random.SeedSequence([self.seed, key[0]], spawn_key=(1,)))
            self._rng_key = key
        return self._rng

    def generate(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Generate one sequence of ``num_input + num_output`` frames.

        Args:
            rng: the numpy generator to draw from (digits, start positions, directions).

        Returns:
            ``(frames, positions, digit_indices)``: frames ``(T, size, size)`` uint8;
            positions ``(T, num_digits, 2)`` float64, each digit's top-left corner (row,
            column) in pixels before rounding, in ``[0, free_range]`` (the digit is pasted at
            ``np.rint(positions)``); digit_indices ``(num_digits,)`` int64 rows of ``digits``.

        Shape:
            - frames: ``(T, size, size)`` frames x pixels, T = num_input + num_output.
            - positions: ``(T, num_digits, 2)`` pixels.
            - digit_indices: ``(num_digits,)``.
        """
        T, K, D, S = self.num_frames, self.num_digits, self.digit_size, self.size
        digit_indices = rng.integers(len(self.digits), size=K)
        pos = rng.random((K, 2))  # (K, 2) row, column in units of the free range
        theta = rng.random(K) * 2 * np.pi
        vel = self.step_length * np.stack([np.sin(theta), np.cos(theta)], axis=1)  # (K, 2)
        positions = np.empty((T, K, 2))
        for t in range(T):
            pos = pos + vel
            low, high = pos <= 0.0, pos >= 1.0  # bounce: clamp and flip that component
            pos = np.clip(pos, 0.0, 1.0)
            vel = np.where(low | high, -vel, vel)
            positions[t] = pos * self.free_range
        corners = np.rint(positions).astype(np.int64)  # (T, K, 2) top-left pixel
        frames = np.zeros((T, S, S), np.uint8)
        for t in range(T):
            for k in range(K):
                r, c = corners[t, k]
                patch = frames[t, r:r + D, c:c + D]
                np.maximum(patch, self.digits[digit_indices[k]], out=patch)
        return frames, positions, digit_indices

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if not 0 <= index < self.num_sequences:
            raise IndexError(f"index {index} out of range for MovingMNIST of length {self.num_sequences}")
        rng = np.random.default_rng([self.seed, int(index)]) if self.fixed else self._process_rng()
        frames, _, _ = self.generate(rng)
        video = torch.from_numpy(frames).float().div_(255.0).unsqueeze(1)  # (T, 1, S, S)
        return {"input": video[:self.num_input], "target": video[self.num_input:]}

    def __repr__(self) -> str:
        return (f"MovingMNIST(num_sequences={self.num_sequences}, num_input={self.num_input}, "
                f"num_output={self.num_output}, num_digits={self.num_digits}, size={self.size}, "
                f"step_length={self.step_length}, seed={self.seed}, fixed={self.fixed}, digits={len(self.digits)})")


class MovingMNISTNpy(Dataset):
    """The standard fixed Moving MNIST test set, ``mnist_test_seq.npy`` (Srivastava et al. 2015).

    The file holds 10,000 sequences of 20 frames, shape ``(20, 10000, 64, 64)`` uint8 (time
    first). It is memory-mapped (``np.load(mmap_mode="r")``), so only the sequences read are
    loaded. Download it from
    http://www.cs.toronto.edu/~nitish/unsupervised_video/mnist_test_seq.npy (about 820 MB);
    this class does not download.

    Args:
        path: the ``.npy`` file.
        num_input: leading frames returned as the input.
        num_output: following frames returned as the target.

    Items:
        ``{"input": float32 (num_input, 1, H, W), "target": float32 (num_output, 1, H, W)}``
        in [0, 1] (uint8 / 255), frames ``0 .. num_input - 1`` and the next ``num_output``.

    Shape:
        - file: ``(T, N, H, W)`` uint8, frames x sequences x pixels (20 x 10000 x 64 x 64).
        - input: ``(num_input, 1, H, W)``; target: ``(num_output, 1, H, W)``.

    Raises:
        FileNotFoundError: ``path`` does not exist (the message gives the download URL).
        ValueError: the array is not 4-D uint8 ``(T, N, H, W)`` with
            ``T >= num_input + num_output``, or a count is not positive.
    """

    def __init__(self, path: str | os.PathLike, *, num_input: int = 10, num_output: int = 10):
        self.path = Path(path)
        self.num_input = _check_positive_int("num_input", num_input)
        self.num_output = _check_positive_int("num_output", num_output)
        if not self.path.is_file():
            raise FileNotFoundError(f"{self.path}: Moving MNIST test set not found; download it from "
                                    f"{MNIST_TEST_SEQ_URL} (shape (20, 10000, 64, 64) uint8)")
        try:
            data = np.load(self.path, mmap_mode="r")
        except (ValueError, OSError) as e:
            raise ValueError(f"{self.path}: not a readable .npy file ({e})") from e
        T = self.num_input + self.num_output
        if not isinstance(data, np.ndarray) or data.ndim != 4 or data.dtype != np.uint8 or data.shape[0] < T:
            found = f"{data.shape} {data.dtype}" if isinstance(data, np.ndarray) else type(data).__name__
            raise ValueError(f"{self.path}: expected Moving MNIST frames (T, N, H, W) uint8 with time first and "
                             f"T >= num_input + num_output = {T} (mnist_test_seq.npy is (20, 10000, 64, 64)), "
                             f"found {found}")
        self.data = data

    def __len__(self) -> int:
        return int(self.data.shape[1])

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {self.path} with {len(self)} sequences")
        T = self.num_input + self.num_output
        frames = np.array(self.data[:T, index])  # (T, H, W) uint8, read from the memory map
        video = torch.from_numpy(frames).float().div_(255.0).unsqueeze(1)  # (T, 1, H, W)
        return {"input": video[:self.num_input], "target": video[self.num_input:]}
