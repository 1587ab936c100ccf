"""Puts the engine and keyword libraries on the import path, as Robot's --pythonpath does."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "libraries"))
