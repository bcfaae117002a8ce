"""Default locations, relative to the project root (the working directory by default)."""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
PROJECT_ROOT = PACKAGE_DIR.parent


def labels_dir() -> Path:
    """Folder of committed label files (``labels/``), overridable with ``MINE_LABELS_DIR``."""
    return Path(os.environ.get("MINE_LABELS_DIR", PROJECT_ROOT / "labels"))


def default_codebook() -> Path:
    return labels_dir() / "codebook.yaml"


def default_db() -> Path:
    """The embedded store, ``data/mine.db`` (kept out of git)."""
    return Path(os.environ.get("MINE_DB", PROJECT_ROOT / "data" / "mine.db"))


def shared_dir() -> Path:
    """``../shared`` beside the checkout: the study's spreadsheets and recorded GitHub responses."""
    return Path(os.environ.get("MINE_SHARED_DIR", PROJECT_ROOT.parent / "shared"))
