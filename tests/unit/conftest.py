"""Makes repros/ importable for the repro unit tests (tests/unit/test_repro_*.py).

The repro scripts are standalone files, not a package; the tests import them by module
name (``import _repro``) exactly as the harness's PYTHONPATH makes them importable.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPROS_DIR = Path(__file__).resolve().parents[2] / "repros"
if str(REPROS_DIR) not in sys.path:
    sys.path.insert(0, str(REPROS_DIR))
