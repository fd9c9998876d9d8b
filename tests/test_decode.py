import json

import numpy as np
import pytest
import torch

from conftest import write_video
from vidrnn.errors import VideoDecodeError
from vidrnn.io import VideoReader, probe_video, read_video


def test_decoder_reference_frames_bit_exact(shared_data):
    ref = shared_data / "videos" / "decoder_reference"
    video = ref / "nasa_13013.mp4"
    with VideoReader(video, stream=3) as r:
        assert (r.info.width, r.info.height) == (480, 270)
        ts = r.frame_timestamps()
        info = json.loads((ref / "nasa_13013.mp4.stream3.all_frames_info.json").read_text())
        assert len(ts) == len(info)
        np.testing.assert_allclose(ts, [float(f["pts_time"]) for f in info], atol=1e-6)
        frames, pts = r.get_frames([386, 0, 35, 5])
    for k, i in enumerate([386, 0, 35, 5]):
        expected = torch.load(ref / f"nasa_13013.mp4.stream3.frame{i:06d}.pt")
        assert torch.equal(frames[k].permute(1, 2, 0), expected), f"frame {i} differs"
        assert pts[k] == pytest.approx(float(info[i]["pts_time"]), abs=1e-6)


def test_best_stream_is_largest_and_index_selects(shared_data):
    video = shared_data / "videos" / "decoder_reference" / "nasa_13013.mp4"
    assert probe_video(video).stream_index == 3
    info0 = probe_video(video, stream=0)
    assert (info0.width, info0.height) == (320, 180)
    with pytest.raises(ValueError, match="stream=1"):
        probe_video(video, stream=1)  # audio, not video
    with pytest.raises(ValueError, match="stream=9"):
        probe_video(video, stream=9)


@pytest.mark.parametrize("name", ["arm_wrestling.mp4", "flipping_pancake.mkv", "ucf101_xvid_320x240.avi",
                                  "v_CricketShot_g04_c01_rgb.gif"])
def test_formats_decode_and_time_addressing_matches_sequential(shared_data, name):
    video = shared_data / "videos" / "clips" / name
    with VideoReader(video) as r:
        seq = list(r.iter_frames())
        ts = r.frame_timestamps()
        assert len(seq) == len(ts)
        np.testing.assert_allclose([p for _, p in seq], ts, atol=1e-6)
        pick = [len(ts) - 1, 0, len(ts) // 2, len(ts) // 3]
        frames, _ = r.get_frames(pick)
    for k, i in enumerate(pick):
        assert torch.equal(frames[k], seq[i][0])


def test_sparse_seek_equals_sequential_on_long_video(shared_data):
    video = shared_data / "videos" / "clips" / "bottle-detection.mp4"
    times = [0.0, 7.3, 15.05, 31.9, 39.7]
    with VideoReader(video) as r:
        got, pts = r.get_frames_at(times)
        ts = r.frame_timestamps()
        want = {}
        for f, p in r.iter_frames():
            want[round(p, 6)] = f
    for k, t in enumerate(times):
        p = ts[np.searchsorted(ts, t + 1e-6) - 1]
        assert pts[k].item() == pytest.approx(p)
        assert torch.equal(got[k], want[round(p, 6)])


def test_variable_frame_rate_uses_timestamps(tmp_path):
    T = 12
    frames = np.zeros((T, 32, 32, 3), np.uint8)
    for i in range(T):
        frames[i, :, :, :] = i * 20  # frame i has grey level 20*i
    pts = [0, 1, 2, 3, 10, 11, 12, 30, 31, 32, 33, 34]  # gaps: variable frame rate, time base 1/10 s
    path = write_video(tmp_path / "vfr.mkv", frames, fps=10, pts=pts, time_base="1/10")
    with VideoReader(path) as r:
        ts = r.frame_timestamps()
        np.testing.assert_allclose(ts, np.array(pts) / 10, atol=1e-3)
        got, p = r.get_frames_at([0.5, 1.05, 2.5, 3.45])
    # the frame shown at t is the last with pts <= t: 0.5 s -> pts 3 (frame 3), 1.05 -> pts 10 (frame 4),
    # 2.5 -> pts 12 (frame 6), 3.45 -> pts 34 (frame 11)
    levels = got.float().mean(dim=(1, 2, 3))
    np.testing.assert_allclose(levels.numpy(), [60, 80, 120, 220], atol=3)


def _set_mp4_rotation_matrix(path):
    """Patch the video track's tkhd matrix to the one FFmpeg writes for 'rotate=90' (display
    turned 90 degrees clockwise): [0 1 0; -1 0 0; 0 0 1] in 16.16 / 2.30 fixed point."""
    import struct

    data = bytearray(path.read_bytes())
    i = data.index(b"tkhd")
    version = data[i + 4]
    # after 'tkhd': version/flags 4, times+id+reserved+duration (20 or 32), reserved 8, layer..volume 8
    off = i + 4 + 4 + (32 if version == 1 else 20) + 8 + 8
    data[off:off + 36] = struct.pack(">9i", 0, 0x10000, 0, -0x10000, 0, 0, 0, 0, 0x40000000)
    path.write_bytes(bytes(data))


def test_rotation_metadata_is_honoured(tmp_path):
    frames = np.zeros((3, 32, 64, 3), np.uint8)
    frames[:, :8, :8] = 255  # white top-left corner of a wide frame
    path = write_video(tmp_path / "rot.mp4", frames)
    _set_mp4_rotation_matrix(path)
    with VideoReader(path) as r:
        assert r.info.rotation % 360 != 0
        assert (r.info.width, r.info.height) == (32, 64)
        got, _ = r.get_frames([0])
    assert got.shape == (1, 3, 64, 32)  # displayed portrait
    img = got[0].float().mean(0)
    # turned clockwise: the top-left corner is now the top-right corner
    assert img[:8, -8:].mean() > 200 and img[:8, :8].mean() < 50 and img[-8:, :8].mean() < 50


def test_resize_in_decoder_keeps_aspect(shared_data):
    video = shared_data / "videos" / "clips" / "arm_wrestling.mp4"
    with VideoReader(video, size=64) as r:
        f, _ = r.get_frames([0])
    assert f.shape == (1, 3, 64, 85)


def test_bad_inputs_name_the_file(tmp_path, shared_data):
    with pytest.raises(FileNotFoundError, match="missing.mp4"):
        VideoReader(tmp_path / "missing.mp4")
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video\n" * 100)
    with pytest.raises(VideoDecodeError, match="notes.mp4"):
        VideoReader(text)
    empty = tmp_path / "empty.mkv"
    empty.write_bytes(b"")
    with pytest.raises(VideoDecodeError, match="empty"):
        VideoReader(empty)
    src = (shared_data / "videos" / "clips" / "arm_wrestling.mp4").read_bytes()
    trunc = tmp_path / "truncated.mp4"
    trunc.write_bytes(src[: len(src) // 3])
    with pytest.raises(VideoDecodeError, match="truncated.mp4"):
        with VideoReader(trunc) as r:
            r.get_frames(list(range(0, r.info.num_frames, 20)))
    audio_only = tmp_path / "audio.wav"
    import av

    with av.open(str(audio_only), "w") as c:
        s = c.add_stream("pcm_s16le", rate=8000, layout="mono")
        af = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16", layout="mono")
        af.sample_rate = 8000
        for p in s.encode(af):
            c.mux(p)
    with pytest.raises(VideoDecodeError, match="no video stream"):
        VideoReader(audio_only)


def test_read_video_all_frames(shared_data):
    v = read_video(shared_data / "videos" / "clips" / "v_CricketShot_g04_c01_rgb.gif")
    assert v.shape == (79, 3, 224, 224) and v.dtype == torch.uint8


def test_torchcodec_backend_gives_the_same_frames(shared_data):
    from vidrnn.io import available_backends

    if "torchcodec" not in available_backends():
        pytest.skip("torchcodec (and FFmpeg's shared libraries) not installed")
    for name in ("arm_wrestling.mp4", "flipping_pancake.mkv", "ucf101_xvid_320x240.avi", "v_CricketShot_g04_c01_rgb.gif"):
        video = shared_data / "videos" / "clips" / name
        with VideoReader(video) as r:
            ts = r.frame_timestamps()
            # (inside the video: past the end of an AVI, whose timestamps are guessed, the
            # two FFmpeg builds may disagree by one frame)
            times = [ts[0], ts[len(ts) // 2], r.info.duration / 3, ts[-2]]
            a, pa = r.get_frames_at(times)
        with VideoReader(video, backend="torchcodec") as r:
            b, pb = r.get_frames_at(times)
        assert torch.equal(a, b), name
        torch.testing.assert_close(pa, pb)


def test_video_with_zero_frames_is_reported(tmp_path):
    import av

    path = tmp_path / "noframes.mkv"  # a video stream in the header, but only audio packets
    with av.open(str(path), "w") as c:
        v = c.add_stream("libx264", rate=10)
        v.width, v.height, v.pix_fmt = 32, 32, "yuv420p"
        a = c.add_stream("pcm_s16le", rate=8000, layout="mono")
        af = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16", layout="mono")
        af.sample_rate = 8000
        for p in a.encode(af):
            c.mux(p)
    assert path.stat().st_size > 0
    with pytest.raises(VideoDecodeError, match="noframes.mkv.*(zero|no video|not a readable)"):
        VideoReader(path)


@pytest.mark.parametrize("suffix,codec", [(".webm", "libvpx-vp9"), (".mkv", "libx264"), (".avi", "mpeg4"),
                                          (".mp4", "libx264")])
def test_written_containers_round_trip_frame_order(tmp_path, suffix, codec):
    T = 8
    frames = np.zeros((T, 32, 32, 3), np.uint8)
    for i in range(T):
        frames[i, :, 4 * i:4 * i + 4] = 255  # a bar that moves right: frame order is visible
    path = write_video(tmp_path / f"clip{suffix}", frames, codec=codec)
    with VideoReader(path) as r:
        assert len(r.frame_timestamps()) == T
        got, _ = r.get_frames(list(range(T)))
    bar = got.float().mean(dim=(1, 2)).argmax(dim=1)  # column of the bar in each frame
    assert (bar // 4).tolist() == list(range(T))


@pytest.mark.parametrize("name", ["bottle-detection.mp4", "car-detection.mp4", "flipping_pancake.mkv"])
def test_keyframe_seek_takes_the_nearest_keyframe_and_says_when(shared_data, name):
    video = shared_data / "videos" / "clips" / name
    with VideoReader(video, size=64) as r:
        keys, ts = r.keyframe_times(), r.frame_timestamps()
        assert len(keys) >= 2 and set(np.round(keys, 6)) <= set(np.round(ts, 6))
        times = np.arange(0.0, r.info.duration, 1.0)
        got, pts = r.get_frames_at(times, seek="keyframe")
        nearest = keys[np.abs(keys[None] - times[:, None]).argmin(1)]
        np.testing.assert_allclose(pts.numpy(), nearest, atol=1e-6)  # the real times come back
        exact, _ = r.get_frames_at(nearest)  # and they are those keyframes, bit for bit
        assert torch.equal(got, exact)
        # within a tolerance: the far times are decoded exactly instead
        got2, pts2 = r.get_frames_at(times, seek="keyframe", tolerance=0.5)
        far = np.abs(nearest - times) > 0.5 + 1e-6
        assert far.any() and (~far).any()
        np.testing.assert_allclose(pts2.numpy()[~far], nearest[~far], atol=1e-6)
        want, want_pts = r.get_frames_at(times[far])
        assert torch.equal(got2[torch.from_numpy(far)], want)
        np.testing.assert_allclose(pts2.numpy()[far], want_pts.numpy())
        with pytest.raises(ValueError, match="seek='nearest'"):
            r.get_frames_at(times, seek="nearest")


def test_keyframe_seek_on_open_gop_video_with_b_frames(tmp_path):
    """Open GOPs reorder frames around keyframes: the container index's decode times are not
    the keyframes' presentation times, so the nearest keyframe comes from a demux."""
    import av

    p = tmp_path / "open_gop.mp4"
    with av.open(str(p), "w") as out:
        s = out.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        s.options = {"g": "12", "bf": "3", "x264-params": "open-gop=1:scenecut=0"}
        rng = np.random.default_rng(0)
        for i in range(75):
            img = (rng.random((48, 64, 3)) * 40 + i * 3).astype(np.uint8)
            for pk in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(pk)
        for pk in s.encode():
            out.mux(pk)
    with VideoReader(p) as r:
        keys = r.keyframe_times()
        assert len(keys) >= 5
        times = np.arange(0.0, 3.0, 0.13)
        _, pts = r.get_frames_at(times, seek="keyframe")
        np.testing.assert_allclose(pts.numpy(), keys[np.abs(keys[None] - times[:, None]).argmin(1)], atol=1e-6)
        _, pts = r.get_frames_at(times, seek="keyframe", tolerance=0.05)
        assert (np.abs(pts.numpy() - times) <= 0.05 + 0.04 + 1e-6).all()  # far times: the exact frame (1/25 s)
        it = r.iter_frames_at(times, seek="keyframe")
        next(it)  # a keyframe pass left suspended does not leak into exact decoding
        _, exact = r.get_frames_at(times)
        ts = r.frame_timestamps()
        np.testing.assert_allclose(exact.numpy(), ts[np.searchsorted(ts, times + 1e-6) - 1], atol=1e-6)
