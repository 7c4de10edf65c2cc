"""The checkout under test: its root, put on sys.path, and the venv's bin."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # `flows` is a top-level package of the checkout, not installed
BIN = Path(sys.executable).parent  # the venv's bin: lsdm, dvc, prefect
