import gzip

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from vidrnn.data.moving_mnist import MNIST_TEST_SEQ_URL, MovingMNIST, MovingMNISTNpy, load_mnist_digits, read_idx


def _write_idx(path, array, type_code=0x08, compress=False):
    dt = {0x08: ">u1", 0x0C: ">i4", 0x0D: ">f4"}[type_code]
    raw = bytes([0, 0, type_code, array.ndim]) + np.array(array.shape, ">i4").tobytes() + array.astype(dt).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(raw) if compress else raw)
    return path


def _marker_digits(n=100):
    """Digit j: value j+1 at its top-left pixel, j+101 at its bottom-right pixel, zero elsewhere."""
    d = np.zeros((n, 28, 28), np.uint8)
    d[:, 0, 0] = np.arange(1, n + 1)
    d[:, 27, 27] = np.arange(101, n + 101)
    return d


# ---------------------------------------------------------------- IDX / MNIST files


def test_read_idx_real_mnist_matches_plain_decode(shared_data):
    images_path = shared_data / "mnist" / "t10k-images-idx3-ubyte.gz"
    labels_path = shared_data / "mnist" / "t10k-labels-idx1-ubyte.gz"
    images = read_idx(images_path)
    assert images.shape == (10000, 28, 28) and images.dtype == np.uint8
    raw = gzip.decompress(images_path.read_bytes())
    assert raw[:4] == b"\x00\x00\x08\x03"
    np.testing.assert_array_equal(images, np.frombuffer(raw, np.uint8, offset=16).reshape(10000, 28, 28))
    labels = read_idx(labels_path)
    raw_labels = gzip.decompress(labels_path.read_bytes())
    np.testing.assert_array_equal(labels, np.frombuffer(raw_labels, np.uint8, offset=8))
    assert labels.shape == (10000,) and set(np.unique(labels)) == set(range(10))
    assert images.max() == 255 and images.min() == 0


def test_load_mnist_digits_shared_default_and_root(shared_data, monkeypatch):
    monkeypatch.setenv("VIDRNN_SHARED_DATA", str(shared_data))
    default = load_mnist_digits()
    assert default.shape == (10000, 28, 28) and default.dtype == np.uint8
    np.testing.assert_array_equal(load_mnist_digits(shared_data / "mnist")[:50], default[:50])


def test_read_idx_plain_big_endian_and_errors(tmp_path):
    a = np.arange(-3, 3, dtype=np.int32).reshape(2, 3) * 70000
    out = read_idx(_write_idx(tmp_path / "ints.idx", a, 0x0C))
    assert out.dtype == np.int32 and out.dtype.isnative
    np.testing.assert_array_equal(out, a)
    f = np.array([[0.5, -2.25]], np.float32)
    np.testing.assert_array_equal(read_idx(_write_idx(tmp_path / "f.idx.gz", f, 0x0D, compress=True)), f)

    bad = tmp_path / "bad.idx"
    bad.write_bytes(b"\x12\x34\x08\x01" + b"\x00" * 8)
    with pytest.raises(ValueError, match="bad.idx.*magic"):
        read_idx(bad)
    short = _write_idx(tmp_path / "short.idx", np.zeros((4, 5), np.uint8))
    short.write_bytes(short.read_bytes()[:-3])
    with pytest.raises(ValueError, match=r"short.idx.*\(4, 5\)"):
        read_idx(short)
    with pytest.raises(FileNotFoundError, match="missing.idx"):
        read_idx(tmp_path / "missing.idx")


def test_load_mnist_digits_torchvision_layout_and_missing(tmp_path, monkeypatch):
    digits = np.random.default_rng(0).integers(0, 256, (3, 28, 28)).astype(np.uint8)
    _write_idx(tmp_path / "MNIST" / "raw" / "t10k-images-idx3-ubyte.gz", digits, compress=True)
    np.testing.assert_array_equal(load_mnist_digits(tmp_path), digits)
    with pytest.raises(FileNotFoundError) as e:
        load_mnist_digits(tmp_path, train=True)
    msg = str(e.value)
    assert "train-images-idx3-ubyte" in msg and str(tmp_path / "MNIST" / "raw") in msg and "download=True" in msg
    monkeypatch.setenv("VIDRNN_SHARED_DATA", str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_mnist_digits()
    with pytest.raises(ValueError, match="root"):
        load_mnist_digits(download=True)
    _write_idx(tmp_path / "odd" / "t10k-images-idx3-ubyte", np.zeros((2, 8, 8), np.uint8))
    with pytest.raises(ValueError, match=r"\(N, 28, 28\)"):
        load_mnist_digits(tmp_path / "odd")


# ---------------------------------------------------------------- generator


def test_generator_motion_statistics():
    ds = MovingMNIST(_marker_digits(), 200, num_input=10, num_output=10, seed=1)
    free, speed = 64 - 28, 0.1 * (64 - 28)
    assert ds.free_range == free and speed == pytest.approx(3.6)
    n_bounce = n_straight = 0
    first_steps = []
    for i in range(200):
        frames, pos, idx = ds.generate(np.random.default_rng([7, i]))
        assert frames.shape == (20, 64, 64) and frames.dtype == np.uint8
        assert pos.shape == (20, 2, 2) and idx.shape == (2,)
        assert pos.min() >= 0 and pos.max() <= free
        # Exactly two digits, each pasted at rint(position) with its 28x28 extent: the markers
        # of the drawn digits sit at the top-left and bottom-right corners, nothing else is inked.
        expected = np.zeros_like(frames)
        corners = np.rint(pos).astype(int)
        for t in range(20):
            for k in range(2):
                r, c = corners[t, k]
                expected[t, r, c] = max(expected[t, r, c], idx[k] + 1)
                expected[t, r + 27, c + 27] = max(expected[t, r + 27, c + 27], idx[k] + 101)
        np.testing.assert_array_equal(frames, expected)

        step = np.diff(pos, axis=0)  # (19, K, 2) pixels per frame
        at_wall = (pos <= 0) | (pos >= free)  # (20, K, 2) clamped coordinates = bounces
        bounce = at_wall.any(-1)  # (20, K)
        norms = np.linalg.norm(step, axis=-1)  # (19, K)
        # Constant speed except on steps that end in a bounce (clamped short).
        straight = ~bounce[1:]
        np.testing.assert_allclose(norms[straight], speed, atol=1e-9)
        assert (norms[~straight] <= speed + 1e-9).all()
        # Velocity is constant between bounces and the bounced component flips sign.
        for t in range(1, 19):
            for k in range(2):
                if not bounce[t, k] and not bounce[t + 1, k]:  # neither step clamped
                    np.testing.assert_allclose(step[t, k], step[t - 1, k], atol=1e-9)
                for a in range(2):
                    if at_wall[t, k, a] and abs(step[t - 1, k, a]) > 1e-9:
                        assert step[t - 1, k, a] * step[t, k, a] < 0
                        n_bounce += 1
        n_straight += int(straight.sum())
        first_steps.append(step[0][~bounce[1]])
    assert n_bounce > 100 and n_straight > 5000  # both cases were exercised
    # Uniform direction: every quadrant gets about a quarter of the digits.
    angles = np.concatenate([np.arctan2(s[:, 0], s[:, 1]) for s in first_steps])
    counts = np.histogram(angles, bins=4, range=(-np.pi, np.pi))[0]
    assert counts.min() > 0.18 * len(angles)


def test_generator_combines_overlapping_real_digits_by_maximum(shared_data):
    digits = load_mnist_digits(shared_data / "mnist")
    ds = MovingMNIST(digits, 1, num_input=5, num_output=5, num_digits=3)
    overlaps = 0
    for i in range(30):
        frames, pos, idx = ds.generate(np.random.default_rng(i))
        canvases = np.zeros((3, 10, 64, 64), np.uint8)  # one canvas per digit
        for k in range(3):
            for t, (r, c) in enumerate(np.rint(pos[:, k]).astype(int)):
                canvases[k, t, r:r + 28, c:c + 28] = digits[idx[k]]
        np.testing.assert_array_equal(frames, canvases.max(0))
        overlaps += int(((canvases > 0).sum(0) > 1).sum())
    assert overlaps > 100  # the maximum mattered (sum or overwrite would differ)


def test_fixed_items_are_deterministic_and_shaped():
    digits = _marker_digits()
    a = MovingMNIST(digits, 8, num_input=4, num_output=3, seed=5)
    b = MovingMNIST(digits, 8, num_input=4, num_output=3, seed=5)
    item = a[3]
    assert set(item) == {"input", "target"}
    assert item["input"].shape == (4, 1, 64, 64) and item["target"].shape == (3, 1, 64, 64)
    assert item["input"].dtype == torch.float32 and 0 <= item["input"].min() and item["target"].max() <= 1
    frames, _, _ = a.generate(np.random.default_rng([5, 3]))
    video = torch.cat([item["input"], item["target"]])[:, 0]
    torch.testing.assert_close(video, torch.from_numpy(frames).float() / 255)
    for other in (a[3], b[3]):
        torch.testing.assert_close(other["input"], item["input"])
        torch.testing.assert_close(other["target"], item["target"])
    assert not torch.equal(a[4]["input"], item["input"])
    assert not torch.equal(MovingMNIST(digits, 8, num_input=4, num_output=3, seed=6)[3]["input"], item["input"])
    with pytest.raises(IndexError):
        a[8]


def _loader_batches(ds, epochs=2):
    loader = DataLoader(ds, batch_size=2, num_workers=2)
    return [torch.cat([b["input"] for b in loader]) for _ in range(epochs)]  # (len, T, 1, S, S) per epoch


def test_on_the_fly_items_vary_across_calls_workers_and_epochs():
    digits = _marker_digits()
    ds = MovingMNIST(digits, 4, num_input=2, num_output=1, fixed=False)
    assert not torch.equal(ds[0]["input"], ds[0]["input"])
    torch.manual_seed(0)
    epochs = _loader_batches(ds)
    flat = torch.cat(epochs).flatten(1)  # (8, T*S*S): 2 epochs x 2 workers x 2 items
    assert len({tuple(x.nonzero().flatten().tolist()) for x in flat}) == 8
    torch.manual_seed(0)  # the torch seed makes the run reproducible
    again = _loader_batches(MovingMNIST(digits, 4, num_input=2, num_output=1, fixed=False))
    for x, y in zip(epochs, again):
        torch.testing.assert_close(x, y)


def test_argument_validation():
    digits = _marker_digits(3)
    with pytest.raises(ValueError, match="digits"):
        MovingMNIST(digits[0], 4)
    with pytest.raises(ValueError, match="digits"):
        MovingMNIST(digits.astype(np.float32), 4)
    with pytest.raises(ValueError, match="size"):
        MovingMNIST(digits, 4, size=20)
    with pytest.raises(ValueError, match="num_digits"):
        MovingMNIST(digits, 4, num_digits=0)
    with pytest.raises(ValueError, match="step_length"):
        MovingMNIST(digits, 4, step_length=-0.1)
    with pytest.raises(ValueError, match="num_sequences"):
        MovingMNIST(digits, 0)
    small = MovingMNIST(torch.from_numpy(digits), 2, size=28, num_input=1, num_output=1)  # no room to move
    assert small[0]["input"].shape == (1, 1, 28, 28)


# ---------------------------------------------------------------- fixed test set (.npy)


def test_moving_mnist_npy(tmp_path):
    arr = np.random.default_rng(0).integers(0, 256, (20, 3, 64, 64)).astype(np.uint8)
    path = tmp_path / "mnist_test_seq.npy"
    np.save(path, arr)
    ds = MovingMNISTNpy(path)
    assert len(ds) == 3 and isinstance(ds.data, np.memmap)
    item = ds[2]
    assert item["input"].shape == (10, 1, 64, 64) and item["target"].shape == (10, 1, 64, 64)
    torch.testing.assert_close(item["input"][:, 0], torch.from_numpy(arr[:10, 2]).float() / 255)
    torch.testing.assert_close(item["target"][:, 0], torch.from_numpy(arr[10:, 2]).float() / 255)
    short = MovingMNISTNpy(path, num_input=5, num_output=2)[1]
    torch.testing.assert_close(short["target"][:, 0], torch.from_numpy(arr[5:7, 1]).float() / 255)
    with pytest.raises(IndexError):
        ds[3]
    with pytest.raises(ValueError, match=r"mnist_test_seq.npy.*T >= num_input \+ num_output = 25"):
        MovingMNISTNpy(path, num_input=15, num_output=10)
    np.save(tmp_path / "flat.npy", arr[:, 0])
    with pytest.raises(ValueError, match=r"flat.npy.*\(T, N, H, W\).*\(20, 64, 64\)"):
        MovingMNISTNpy(tmp_path / "flat.npy")
    with pytest.raises(FileNotFoundError, match=MNIST_TEST_SEQ_URL.replace(".", r"\.")):
        MovingMNISTNpy(tmp_path / "absent.npy")
