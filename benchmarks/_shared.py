"""What the benchmark scripts share: where the real data is (``../shared/data`` beside the
checkout, or ``$VIDRNN_SHARED_DATA``)."""

import argparse
import os
from pathlib import Path

#: the shared data folder of ../shared/data/README.md
SHARED_DATA = Path(os.environ.get("VIDRNN_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def add_data_argument(ap: argparse.ArgumentParser) -> None:
    """``--data DIR``: the shared data folder (default :data:`SHARED_DATA`)."""
    ap.add_argument("--data", type=Path, default=SHARED_DATA, help=f"shared data folder (default {SHARED_DATA})")
