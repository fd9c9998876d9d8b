"""Hostile and broken video files: every case gives frames or a VideoDecodeError naming the file.

The campaign itself is ``benchmarks/fuzz_decode.py`` (seeded mutations of the real clips: truncation,
bit flips, zeroed and swapped blocks, crafted headers with huge durations, frame sizes and rates);
each case runs in a worker process with a time limit, so a crash or a hang fails the test.
"""

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from vidrnn.errors import VideoDecodeError
from vidrnn.io import DecodeLimits, VideoReader

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import fuzz_decode  # noqa: E402


def test_fuzzed_files_give_frames_or_a_video_decode_error(shared_data, tmp_path):
    cases = fuzz_decode.make_cases(shared_data / "videos", tmp_path, 280, seed=1)
    outcomes = fuzz_decode.run_cases([p for _, _, p in cases], timeout=30.0)
    bad = [(kind, p.name, o) for (_, kind, p), o in zip(cases, outcomes) if o not in ("ok", "VideoDecodeError")]
    assert not bad, bad
    assert outcomes.count("VideoDecodeError") >= 20 and outcomes.count("ok") >= 20  # the mutations bite, not all
    kinds = {kind for (_, kind, _), o in zip(cases, outcomes) if o == "VideoDecodeError"}
    assert {"truncate", "huge_duration", "huge_size"} <= kinds


def test_limits_are_checked_before_decoding_and_name_the_file(shared_data, tmp_path):
    import random

    gif = shared_data / "videos" / "clips" / "v_CricketShot_g04_c01_rgb.gif"
    big = tmp_path / "big.gif"  # a crafted 16000x16000 GIF: refused from its header, at once
    big.write_bytes(fuzz_decode.mutate(gif.read_bytes(), "huge_size", random.Random(0), ".gif"))
    with pytest.raises(VideoDecodeError, match=r"big.gif: declares 16000x16000 frames, more than the limit of 8192x8192"):
        VideoReader(big)
    mkv = tmp_path / "long.mkv"
    mkv.write_bytes(fuzz_decode.mutate((shared_data / "videos" / "asl" / "again.mkv").read_bytes(), "huge_duration",
                                       random.Random(0), ".mkv"))
    with pytest.raises(VideoDecodeError, match=r"long.mkv: declares a duration of .* more than the limit"):
        VideoReader(mkv)
    clip = shared_data / "videos" / "clips" / "arm_wrestling.mp4"
    with VideoReader(clip, limits=DecodeLimits(max_frames=5)) as r:
        with pytest.raises(VideoDecodeError, match="6 frames asked for, more than the limit of 5"):
            r.get_frames_at(np.zeros(6))
        assert r.get_frames_at(np.zeros(5))[0].shape[0] == 5
    with VideoReader(clip, limits=DecodeLimits(budget=0.0)) as r:  # a budget already spent: abandoned
        with pytest.raises(VideoDecodeError, match="arm_wrestling.mp4: decoding took more than 0 s"):
            r.get_frames_at([5.0])
    with pytest.raises(VideoDecodeError, match=r"declares 340x256 frames, more than the limit of 320x8192"):
        VideoReader(clip, limits=DecodeLimits(max_width=320))
    with VideoReader(clip) as r:
        assert torch.is_tensor(r.get_frames_at([0.0])[0])


class _RunsCode:
    """Unpickling this calls ``Path.touch`` on the marker: what a hostile checkpoint would do."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def test_a_checkpoint_that_would_run_code_is_refused_and_nothing_runs(tmp_path, shared_data, capsys):
    from vidrnn.cli import main

    marker = tmp_path / "ran"
    crafted = tmp_path / "crafted.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": {"model_name": "lrcn_tiny", "class_names": ["a"],
                                                       "payload": _RunsCode(marker)}}, crafted)
    clip = shared_data / "videos" / "clips" / "arm_wrestling.mp4"
    for cmd in (["predict", str(crafted), str(clip)], ["test", str(crafted)], ["export", str(crafted), "--out",
                                                                                 str(tmp_path / "x")]):
        assert main(cmd) == 2
        err = capsys.readouterr().err
        assert "crafted.ckpt: refused" in err and err.count("\n") == 1, err
    assert not marker.exists()  # nothing ran
    assert not (tmp_path / "x").exists()  # and nothing was written
    truncated = tmp_path / "truncated.ckpt"
    torch.save({"state_dict": {"w": torch.zeros(1000)}, "hyper_parameters": {}}, truncated)
    truncated.write_bytes(truncated.read_bytes()[:500])
    assert main(["predict", str(truncated), str(clip)]) == 2
    assert "truncated.ckpt: not a readable PyTorch checkpoint" in capsys.readouterr().err


def test_other_bad_inputs_get_a_clear_error_naming_the_file(tmp_path, shared_data, png_declaring):
    import io

    from PIL import Image

    from vidrnn.data.caption_datamodule import read_image
    from vidrnn.errors import DataError
    from vidrnn.io.radar import read_fmi_pgm, read_knmi_hdf5
    from vidrnn.io.text import read_text

    buf = io.BytesIO()
    Image.new("RGB", (64, 64), (200, 10, 10)).save(buf, "JPEG")
    (tmp_path / "trunc.jpg").write_bytes(buf.getvalue()[:300])
    (tmp_path / "bomb.png").write_bytes(png_declaring(100_000, 100_000))  # 1e10 pixels declared
    cases = [
        (lambda p: read_image(p, 32), "trunc.jpg", DataError, "not a readable image"),
        (lambda p: read_image(p, 32), "bomb.png", DataError, "DecompressionBombError"),  # Pillow's guard is on
        (read_fmi_pgm, "trunc.pgm.gz", ValueError, "cannot be decompressed"),
        (read_fmi_pgm, "bad.pgm", ValueError, "expected a binary PGM file starting with 'P5'"),
        (read_knmi_hdf5, "empty.h5", ValueError, "expected an HDF5 dataset 'image1/image_data'"),
        (read_knmi_hdf5, "garbage.h5", ValueError, "not a readable HDF5 file"),
        (read_text, "bin.txt", DataError, "not UTF-8 text"),
    ]
    fmi = sorted((shared_data / "radar" / "fmi").rglob("*.pgm*"))[0].read_bytes()
    (tmp_path / "trunc.pgm.gz").write_bytes(fmi[: len(fmi) // 3])
    (tmp_path / "bad.pgm").write_bytes(b"P9\n12 12\n255\n" + bytes(144))
    h5py = pytest.importorskip("h5py")
    with h5py.File(tmp_path / "empty.h5", "w") as f:
        f.create_group("overview")
    (tmp_path / "garbage.h5").write_bytes(b"not hdf5" * 100)
    (tmp_path / "bin.txt").write_bytes(bytes(range(256)))
    before = sorted(p.name for p in tmp_path.iterdir())
    for read, name, err, message in cases:
        with pytest.raises(err, match=message) as e:
            read(tmp_path / name)
        assert str(tmp_path / name) in str(e.value)  # the message names the file
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written or overwritten
