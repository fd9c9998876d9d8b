"""Radar readers, Z-R conversion, unit scale, windows and baselines (vidrnn.io.radar, vidrnn.metrics.rainrate, vidrnn.data.radar,
vidrnn.models.extrapolation).

Real data: the FMI and KNMI events of pysteps-data in ../shared/data/radar (VIDRNN_SHARED_DATA).
"""

import datetime as dt
import gzip
import math

import numpy as np
import pytest
import torch

from vidrnn.data.radar import RadarWindows, load_radar_sequence
from vidrnn.io.radar import find_radar_files, read_fmi_pgm, read_knmi_hdf5
from vidrnn.metrics.rainrate import dbz_to_rainrate, from_unit, rainrate_to_dbz, to_unit
from vidrnn.models.extrapolation import persistence, pysteps_extrapolation

FMI_DIR = "radar/fmi/20160928"
KNMI_DIR = "radar/knmi/2010-08"


# ---------------------------------------------------------------------------------------------
# helpers


def write_pgm(path, pixels, comments=(), *, gz=False):
    """A binary PGM (P5) with header comments, FMI style."""
    h, w = pixels.shape
    header = b"P5\n" + b"".join(b"# " + c.encode() + b"\n" for c in comments) + f"{w} {h}\n255\n".encode()
    data = header + np.ascontiguousarray(pixels, dtype=np.uint8).tobytes()
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def decode_pgm_by_hand(path):
    """The raw uint8 raster of an FMI .pgm.gz, decoded here with gzip + numpy only."""
    raw = gzip.open(path).read()
    lines = raw.split(b"\n")
    assert lines[0] == b"P5"
    i = 1
    while lines[i].startswith(b"#"):
        i += 1
    w, h = map(int, lines[i].split())
    assert int(lines[i + 1]) == 255
    offset = sum(len(line) + 1 for line in lines[:i + 2])
    assert len(raw) - offset == w * h
    return np.frombuffer(raw, np.uint8, offset=offset).reshape(h, w)


@pytest.fixture(scope="module")
def fmi_files(shared_data):
    return find_radar_files(shared_data / FMI_DIR, "fmi")


@pytest.fixture(scope="module")
def knmi_files(shared_data):
    return find_radar_files(shared_data / KNMI_DIR, "knmi")


@pytest.fixture(scope="module")
def fmi_seq(shared_data):
    return load_radar_sequence(shared_data / FMI_DIR, "fmi", downsample=8)


# ---------------------------------------------------------------------------------------------
# readers on the real files


def test_read_fmi_pgm_matches_hand_decoding(fmi_files):
    path = fmi_files[0]
    raw = decode_pgm_by_hand(path)
    dbz, meta = read_fmi_pgm(path)
    assert dbz.shape == raw.shape == (1226, 760) and dbz.dtype == np.float32
    nodata = raw == 255
    assert nodata.any() and (raw == 0).any()
    np.testing.assert_array_equal(np.isnan(dbz), nodata)
    np.testing.assert_array_equal(dbz[~nodata], raw[~nodata].astype(np.float32) * 0.5 - 32)
    # specific pixels: the strongest echo, a "no echo" pixel (code 0 -> -32 dBZ), a no-data corner
    iy, ix = np.unravel_index(np.argmax(np.where(nodata, 0, raw)), raw.shape)
    assert dbz[iy, ix] == 0.5 * int(raw[iy, ix]) - 32 and dbz[iy, ix] > 40
    zy, zx = np.argwhere(raw == 0)[0]
    assert dbz[zy, zx] == -32.0
    assert raw[0, 0] == 255 and np.isnan(dbz[0, 0])
    assert meta["timestamp"] == dt.datetime(2016, 9, 28, 14, 45) and meta["units"] == "dBZ"
    assert meta["pixel_size_m"] == pytest.approx((999.62859, 999.674053))
    assert meta["projection"].startswith("+proj=stere") and "+lat_ts=60" in meta["projection"]
    assert meta["bottomleft"] == pytest.approx((18.6, 57.93)) and len(meta["radars"]) == 10


def test_read_knmi_hdf5_matches_raw_values(knmi_files):
    h5py = pytest.importorskip("h5py")
    path = knmi_files[48]
    with h5py.File(path, "r") as f:
        raw = f["image1/image_data"][()]
    rain, meta = read_knmi_hdf5(path)
    assert rain.shape == raw.shape == (765, 700) and rain.dtype == np.float32
    missing = raw == 65535
    np.testing.assert_array_equal(np.isnan(rain), missing)
    # 5-minute accumulation in 0.01 mm -> mm/h
    np.testing.assert_allclose(rain[~missing], raw[~missing] * 0.01 * 12, rtol=1e-6)
    iy, ix = np.unravel_index(np.argmax(np.where(missing, 0, raw)), raw.shape)
    assert rain[iy, ix] == pytest.approx(int(raw[iy, ix]) * 0.12)
    assert meta["timestamp"] == dt.datetime(2010, 8, 26, 4, 0) and meta["units"] == "mm/h"
    assert meta["accumulation_minutes"] == 5.0
    assert meta["calibration"]["formula"] == "GEO=0.01*PV+0.0"
    assert meta["calibration"]["gain"] == 0.01 and meta["calibration"]["missing"] == [65535]
    assert meta["pixel_size_m"] == (1000.0, 1000.0)


def test_read_knmi_uses_calibration_attributes(tmp_path):
    h5py = pytest.importorskip("h5py")
    raw = np.array([[0, 1, 7], [10, 20, 65535]], dtype=np.uint16)
    path = tmp_path / "RAD_NL25_RAP_10min_202001010010.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("image1/image_data", data=raw)
        cal = f.create_group("image1/calibration")
        cal.attrs["calibration_formulas"] = np.bytes_(b"GEO=0.5*PV+1.0")
        cal.attrs["calibration_missing_data"] = np.array([7], dtype=np.int32)
        ov = f.create_group("overview")
        ov.attrs["product_datetime_start"] = np.array([b"01-JAN-2020;00:00:00.000"])
        ov.attrs["product_datetime_end"] = np.array([b"01-JAN-2020;00:10:00.000"])
    rain, meta = read_knmi_hdf5(path)
    assert meta["accumulation_minutes"] == 10.0 and meta["calibration"]["missing"] == [7]
    expected = (raw.astype(np.float64) * 0.5 + 1.0) * 6.0
    expected[0, 2] = np.nan  # the file's own missing code; 65535 is an ordinary value here
    np.testing.assert_allclose(rain, expected, rtol=1e-6)
    assert meta["timestamp"] == dt.datetime(2020, 1, 1, 0, 10)


def test_read_fmi_plain_pgm_and_bad_files(tmp_path):
    pix = np.array([[0, 64, 255], [100, 2, 1]], dtype=np.uint8)
    p = write_pgm(tmp_path / "202001010005_fmi.radar.composite.lowest_TEST.pgm", pix,
                  ["obstime 202001010005", "metersperpixel_x 500", "metersperpixel_y 500"])
    dbz, meta = read_fmi_pgm(p)
    np.testing.assert_array_equal(dbz, [[-32, 0, np.nan], [18, -31, -31.5]])
    assert meta["timestamp"] == dt.datetime(2020, 1, 1, 0, 5) and meta["pixel_size_m"] == (500.0, 500.0)
    # truncated raster, wrong magic, missing file
    (tmp_path / "202001010010_fmi.bad.pgm").write_bytes(p.read_bytes()[:-2])
    with pytest.raises(ValueError, match="truncated PGM"):
        read_fmi_pgm(tmp_path / "202001010010_fmi.bad.pgm")
    (tmp_path / "202001010015_fmi.bad.pgm").write_bytes(b"P2\n2 1\n255\n0 1\n")
    with pytest.raises(ValueError, match="P5"):
        read_fmi_pgm(tmp_path / "202001010015_fmi.bad.pgm")
    with pytest.raises(FileNotFoundError):
        read_fmi_pgm(tmp_path / "nope.pgm")


# ---------------------------------------------------------------------------------------------
# whole events


def test_real_events_shapes_and_timestamps(fmi_seq, shared_data):
    rain, ts, meta = fmi_seq
    assert rain.shape == (40, 1226 // 8, 760 // 8) and rain.dtype == np.float32
    assert ts[0] == dt.datetime(2016, 9, 28, 14, 45) and ts[-1] == dt.datetime(2016, 9, 28, 18, 0)
    assert all(b - a == dt.timedelta(minutes=5) for a, b in zip(ts, ts[1:]))
    assert meta["timestep_minutes"] == 5.0 and meta["units"] == "mm/h"
    assert meta["zr_a"] == 223.0 and meta["zr_b"] == 1.53 and len(meta["files"]) == 40
    assert np.isnan(rain).any() and 0 <= np.nanmin(rain) and 10 < np.nanmax(rain) < 200

    rain, ts, meta = load_radar_sequence(shared_data / KNMI_DIR, "knmi", downsample=8)
    assert rain.shape == (92, 765 // 8, 700 // 8)
    assert ts[0] == dt.datetime(2010, 8, 26, 0, 0) and ts[-1] == dt.datetime(2010, 8, 26, 7, 35)
    assert meta["timestep_minutes"] == 5.0 and meta["accumulation_minutes"] == 5.0
    assert meta["pixel_size_m"] == (8000.0, 8000.0)


def test_load_sequence_downsample_and_errors(tmp_path):
    rng = np.random.default_rng(0)
    pix = rng.integers(0, 120, size=(3, 5, 7), dtype=np.uint8)
    pix[0, :2, :2] = 255  # an all-no-data 2x2 block
    pix[0, 2, 2] = 255  # one missing pixel in a block
    for k, minute in enumerate([0, 5, 10]):
        write_pgm(tmp_path / f"2020010100{minute:02d}_fmi.radar.composite.t.pgm.gz", pix[k], gz=True)
    full, ts, meta = load_radar_sequence(tmp_path, "fmi", downsample=1)
    dbz = np.where(pix == 255, np.nan, pix * 0.5 - 32)
    expected = (10 ** (dbz / 10) / 223.0) ** (1 / 1.53)
    expected[pix == 0] = 0.0  # "no echo" -> exactly 0 mm/h
    np.testing.assert_allclose(full, expected, rtol=1e-5)
    assert meta["timestep_minutes"] == 5.0 and ts[2] == dt.datetime(2020, 1, 1, 0, 10)

    down, _, _ = load_radar_sequence(tmp_path, "fmi", downsample=2)
    assert down.shape == (3, 2, 3)  # the 5th row and 7th column are dropped
    assert np.isnan(down[0, 0, 0])
    np.testing.assert_allclose(down[0, 1, 1], np.nanmean(full[0, 2:4, 2:4]), rtol=1e-5)
    np.testing.assert_allclose(down[1], full[1, :4, :6].reshape(2, 2, 3, 2).mean(axis=(1, 3)), rtol=1e-5)

    write_pgm(tmp_path / "202001010025_fmi.radar.composite.t.pgm", pix[0])
    with pytest.raises(ValueError, match=r"202001010025_fmi.*time step 15 min.*expected a constant 5 min"):
        load_radar_sequence(tmp_path, "fmi")
    with pytest.raises(FileNotFoundError, match=r"no knmi radar files in .*RAD_NL25_RAP_5min_YYYYMMDDHHMM.h5"):
        find_radar_files(tmp_path, "knmi")
    with pytest.raises(ValueError, match="downsample"):
        load_radar_sequence(tmp_path, "fmi", downsample=0)
    with pytest.raises(ValueError, match="source="):
        find_radar_files(tmp_path, "mrms")


# ---------------------------------------------------------------------------------------------
# Z-R and unit scale


def test_marshall_palmer_hand_values():
    rain = np.array([0.0, 1.0, 10.0, np.nan], dtype=np.float32)
    dbz = rainrate_to_dbz(rain)
    assert dbz.dtype == np.float32 and dbz[0] == -np.inf and np.isnan(dbz[3])
    np.testing.assert_allclose(dbz[1:3], [23.0103, 39.0103], atol=1e-4)  # 10 log10(200) + 16 log10 R
    assert dbz_to_rainrate(np.array([0.0]))[0] == pytest.approx(200 ** (-1 / 1.6))  # 0.0365 mm/h
    assert dbz_to_rainrate(np.array([-np.inf]))[0] == 0.0
    r = np.geomspace(1e-3, 300, 50)
    np.testing.assert_allclose(dbz_to_rainrate(rainrate_to_dbz(r, 58.53, 1.56), 58.53, 1.56), r, rtol=1e-10)
    t = torch.tensor([0.0, 1.0, 10.0, float("nan")])
    np.testing.assert_allclose(rainrate_to_dbz(t).numpy(), dbz, rtol=1e-6)
    assert torch.allclose(dbz_to_rainrate(rainrate_to_dbz(t[1:3])), t[1:3])
    with pytest.raises(ValueError, match=">= 0"):
        rainrate_to_dbz(np.array([1.0, -0.5]))
    with pytest.raises(ValueError, match="positive"):
        dbz_to_rainrate(np.array([10.0]), a=0)


def test_unit_scale_round_trip():
    rain = np.array([0.0, np.nan, 1.0, 1e-4, 1000.0], dtype=np.float32)
    u = to_unit(rain)
    assert u.dtype == np.float32
    np.testing.assert_allclose(u, [0, 0, (23.0103 + 10) / 70, 0, 1], atol=1e-5)
    r = np.geomspace(0.01, 200, 40).astype(np.float32)  # inside [-10, 60] dBZ with Marshall-Palmer
    np.testing.assert_allclose(from_unit(to_unit(r)), r, rtol=1e-4)
    x = torch.linspace(0, 1, 11)
    back = to_unit(from_unit(x))
    assert from_unit(x)[0] == 0 and torch.allclose(back, x, atol=1e-6)
    assert from_unit(torch.tensor([-0.2, 1.3])).tolist() == pytest.approx([0.0, float(from_unit(torch.tensor(1.0)))])


# ---------------------------------------------------------------------------------------------
# windows


def test_radar_windows_eval_counts_shapes_content():
    rain = np.random.default_rng(0).gamma(0.5, 2.0, size=(20, 16, 16)).astype(np.float32)
    rain[7, 3, 4] = np.nan
    ds = RadarWindows(rain, in_frames=5, out_frames=12)
    assert len(ds) == 20 - 17 + 1
    item = ds[2]
    assert item["input"].shape == (5, 1, 16, 16) and item["target"].shape == (12, 1, 16, 16)
    assert item["input"].dtype == item["target_rain"].dtype == torch.float32
    np.testing.assert_array_equal(item["input_rain"][:, 0].numpy(), rain[2:7])
    np.testing.assert_array_equal(item["target_rain"][:, 0].numpy(), rain[7:19])
    assert torch.isnan(item["target_rain"][0, 0, 3, 4]) and item["target"][0, 0, 3, 4] == 0
    assert torch.equal(item["target"], to_unit(item["target_rain"]))
    assert 0 <= item["input"].min() and item["input"].max() <= 1

    assert len(RadarWindows(rain, in_frames=5, out_frames=12, stride=2)) == 2
    grid = RadarWindows(rain, in_frames=5, out_frames=12, crop=6)  # 2x2 tiles of 6 px, centred
    assert len(grid) == 4 * 4 and grid.origins == [(2, 2), (2, 8), (8, 2), (8, 8)]
    it = grid[5]  # window start 1, tile (2, 8)
    assert it["start"] == 1 and it["origin"].tolist() == [2, 8] and it["input"].shape == (5, 1, 6, 6)
    np.testing.assert_array_equal(it["input_rain"][:, 0].numpy(), rain[1:6, 2:8, 8:14])
    centre = RadarWindows(rain, in_frames=5, out_frames=12, crop=6, eval_crops="centre")
    assert len(centre) == 4 and centre[0]["origin"].tolist() == [5, 5]
    assert all(torch.equal(grid[i]["input"], grid[i]["input"]) for i in range(3))


def test_radar_windows_random_mode_determinism():
    rain = np.random.default_rng(1).gamma(0.5, 2.0, size=(30, 20, 24)).astype(np.float32)
    ds = RadarWindows(rain, in_frames=3, out_frames=4, crop=8, random_crop=True, seed=7)
    assert len(ds) == 30 - 7 + 1
    a = [(ds[i]["start"], tuple(ds[i]["origin"].tolist())) for i in range(len(ds))]
    assert a == [(ds[i]["start"], tuple(ds[i]["origin"].tolist())) for i in range(len(ds))]
    assert len(set(a)) > 10  # draws vary across items
    for s, (y, x) in a:
        assert 0 <= s <= 23 and 0 <= y <= 12 and 0 <= x <= 16
    it = ds[3]
    s, (y, x) = a[3]
    np.testing.assert_array_equal(it["target_rain"][:, 0].numpy(), rain[s + 3:s + 7, y:y + 8, x:x + 8])
    ds.set_epoch(1)
    assert [(ds[i]["start"], tuple(ds[i]["origin"].tolist())) for i in range(len(ds))] != a
    unseeded = RadarWindows(rain, in_frames=3, out_frames=4, crop=8, random_crop=True)
    torch.manual_seed(0)
    b = [unseeded[i]["start"] for i in range(10)]
    torch.manual_seed(0)
    assert b == [unseeded[i]["start"] for i in range(10)]


def test_radar_windows_errors():
    rain = np.zeros((10, 8, 8), np.float32)
    with pytest.raises(ValueError, match=r"rain has 10 frames but one window needs .* = 17"):
        RadarWindows(rain, in_frames=5, out_frames=12)
    with pytest.raises(ValueError, match="larger than the frames"):
        RadarWindows(rain, in_frames=2, out_frames=2, crop=9)
    with pytest.raises(ValueError, match=r"\(T, H, W\)"):
        RadarWindows(rain[0], in_frames=2, out_frames=2)
    with pytest.raises(ValueError, match="stride"):
        RadarWindows(rain, in_frames=2, out_frames=2, stride=0)
    with pytest.raises(IndexError):
        RadarWindows(rain, in_frames=2, out_frames=2)[7]


def test_radar_windows_on_real_event(fmi_seq):
    rain, _, meta = fmi_seq
    ds = RadarWindows(rain, in_frames=5, out_frames=12, crop=64, a=meta["zr_a"], b=meta["zr_b"])
    assert len(ds) == (40 - 17 + 1) * (153 // 64) * (95 // 64)
    batch = torch.utils.data.default_collate([ds[0], ds[1]])
    assert batch["input"].shape == (2, 5, 1, 64, 64) and batch["target_rain"].shape == (2, 12, 1, 64, 64)
    assert batch["input"].max() > 0.3  # real echoes, not just the zero fill


# ---------------------------------------------------------------------------------------------
# baselines


def test_persistence():
    x = torch.rand(2, 5, 1, 4, 6)
    y = persistence(x, 3)
    assert y.shape == (2, 3, 1, 4, 6)
    assert all(torch.equal(y[:, k], x[:, -1]) for k in range(3))
    y[0, 0, 0, 0, 0] = -1  # a real copy, not a view of the input
    assert x[0, -1, 0, 0, 0] >= 0
    yn = persistence(x.numpy(), 2)
    assert isinstance(yn, np.ndarray) and np.array_equal(yn[:, 1], x[:, -1].numpy())
    with pytest.raises(ValueError, match=r"\(B, T, 1, H, W\)"):
        persistence(x[:, :, 0], 3)


def _blob(cy, cx, size=48, sigma=3.0, peak=20.0):
    yy, xx = np.mgrid[:size, :size]
    return peak * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * sigma**2))


def test_pysteps_extrapolation_moves_a_blob():
    pytest.importorskip("pysteps")
    pytest.importorskip("cv2")
    # a rain cell moving 2 px/frame to the right
    frames = np.stack([_blob(24, 8 + 2 * t) + _blob(12, 10 + 2 * t, sigma=2) for t in range(10)]).astype(np.float32)
    x, truth = torch.from_numpy(frames[None, :5, None]), torch.from_numpy(frames[None, 5:, None])
    f = pysteps_extrapolation(x, 5, outval=0.0)
    assert f.shape == (1, 5, 1, 48, 48) and f.dtype == torch.float32 and not torch.isnan(f).any()
    # centroid of the last forecast is near the true position (x = 8 + 2*9 = 26)
    w = f[0, -1, 0].numpy()
    cx = (w * np.arange(48)[None]).sum() / w.sum()
    assert abs(cx - 26) < 1.5
    err_lk = torch.nanmean((f - truth).abs())
    err_persist = torch.nanmean((persistence(x, 5) - truth).abs())
    assert err_lk < 0.5 * err_persist


def test_readers_and_extrapolation_match_pysteps(fmi_files, knmi_files, fmi_seq, tmp_path):
    pytest.importorskip("pysteps")
    pytest.importorskip("cv2")
    pytest.importorskip("pyproj")
    from pysteps import motion, nowcasts
    from pysteps.io.importers import import_fmi_pgm, import_knmi_hdf5
    from pysteps.utils import conversion, transformation

    # FMI reflectivity: identical, and the rain rate pysteps derives from its metadata
    ref, _, ref_meta = import_fmi_pgm(str(fmi_files[3]), gzipped=True)
    dbz, meta = read_fmi_pgm(fmi_files[3])
    np.testing.assert_array_equal(dbz, ref.astype(np.float32))
    assert meta["projection"].split() == ref_meta["projection"].split()
    ref_rain, _ = conversion.to_rainrate(ref, ref_meta)
    for k in range(2):
        (tmp_path / fmi_files[3 + k].name).symlink_to(fmi_files[3 + k])  # read in place, no copy
    rain, _, _ = load_radar_sequence(tmp_path, "fmi")
    np.testing.assert_allclose(rain[0], ref_rain, rtol=1e-5, atol=1e-9)

    # KNMI: pysteps' accumulation in mm, converted to mm/h
    ref, _, ref_meta = import_knmi_hdf5(str(knmi_files[10]))
    ref_rate, _ = conversion.to_rainrate(ref, ref_meta)
    np.testing.assert_allclose(read_knmi_hdf5(knmi_files[10])[0], ref_rate, rtol=1e-6, atol=1e-9)

    # extrapolation equals pysteps' "extrapolation nowcast" example on real frames (8 km pixels)
    frames = fmi_seq[0][10:15]
    db, db_meta = transformation.dB_transform(frames.astype(np.float64), threshold=0.1, zerovalue=-15.0)
    velocity = motion.get_method("LK")(db[-3:])
    db[~np.isfinite(db)] = db_meta["zerovalue"]
    expected = nowcasts.get_method("extrapolation")(db[-1], velocity, 6)
    expected = transformation.dB_transform(expected, threshold=-10.0, inverse=True)[0]
    got = pysteps_extrapolation(frames[None, :, None], 6)[0, :, 0]
    np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    assert np.nanmax(got) > 1 and not math.isnan(float(np.nanmean(got)))


def test_extrapolation_beats_persistence_on_real_event(fmi_seq):
    pytest.importorskip("pysteps")
    pytest.importorskip("cv2")
    from vidrnn.metrics.nowcasting import NowcastingScores

    rain = torch.from_numpy(fmi_seq[0])
    x, truth = rain[None, 10:15, None], rain[None, 15:27, None]  # 5 inputs, 12 x 5 min ahead
    scores = {}
    for name, forecast in (("persistence", persistence(x, 12)), ("lk", pysteps_extrapolation(x, 12))):
        metric = NowcastingScores((0.5, 2.0))
        metric.update(forecast, truth)
        scores[name] = metric.compute()["csi"]  # (2, 12)
    # the rain band moves: advecting it must beat standing still, on average over lead times
    assert (scores["lk"].nanmean(dim=1) > scores["persistence"].nanmean(dim=1) + 0.03).all()
    assert 0.3 < float(scores["persistence"][0, 0]) < 0.95
