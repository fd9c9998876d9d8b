import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Under ``VIDRNN_NO_SKIPS=1`` (set by ``.ci/run``, which installs every backend and extra the
    tests use) a skipped test is a failure: in CI no test may skip for want of a dependency."""
    outcome = yield
    report = outcome.get_result()
    if report.skipped and not hasattr(report, "wasxfail") and os.environ.get("VIDRNN_NO_SKIPS") == "1":
        reason = report.longrepr[-1] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped under VIDRNN_NO_SKIPS=1 (every test is required in CI): {reason}"


def shared_data_dir() -> Path:
    return Path(os.environ.get("VIDRNN_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real data folder (../shared/data); fails instead of skipping under VIDRNN_REQUIRE_SHARED_DATA=1."""
    d = shared_data_dir()
    if not (d / "videos").is_dir():
        msg = f"real data not found at {d} (set VIDRNN_SHARED_DATA)"
        if os.environ.get("VIDRNN_REQUIRE_SHARED_DATA") == "1":
            pytest.fail(msg)
        pytest.skip(msg)
    return d


def write_video(path, frames, *, fps=10, codec="libx264", pts=None, time_base=None):
    """Write uint8 (T, H, W, 3) frames with PyAV; optional explicit pts (variable frame rate)."""
    import av
    from fractions import Fraction

    with av.open(str(path), "w") as c:
        s = c.add_stream(codec, rate=fps)
        s.width, s.height = frames.shape[2], frames.shape[1]
        s.pix_fmt = "yuv420p"
        if time_base is not None:
            s.codec_context.time_base = Fraction(time_base)
        for i, f in enumerate(frames):
            vf = av.VideoFrame.from_ndarray(f, format="rgb24")
            if pts is not None:
                vf.pts = pts[i]
                vf.time_base = Fraction(time_base)
            for p in s.encode(vf):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


def _png_declaring(width: int, height: int) -> bytes:
    """A PNG whose header (valid CRC) declares ``width`` x ``height`` pixels over a tiny image."""
    import io
    import struct
    import zlib

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buf, "PNG")
    data = bytearray(buf.getvalue())
    ihdr = bytearray(data[12:29])  # b"IHDR" + 13 bytes
    struct.pack_into(">II", ihdr, 4, width, height)
    data[12:29] = ihdr
    struct.pack_into(">I", data, 29, zlib.crc32(bytes(ihdr)) & 0xFFFFFFFF)
    return bytes(data)


@pytest.fixture
def png_declaring():
    """:func:`_png_declaring`: crafted PNG headers (decompression bombs)."""
    return _png_declaring
