"""The environment variables of a cell: one place for what both executors set.

Each cell gets its identity (cell id, key, base, environment), what was installed
(`REPROMATRIX_LIBRARIES`, read back by the repro helper for provenance), and HOME plus the
compile caches pointing inside its environment: reused by every cell of the same pins,
never shared between library versions (a stale kernel would silently produce wrong ranges).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from repromatrix.model import Cell


def cache_variables(*, home: str, cache: str) -> dict[str, str]:
    """HOME and the compile caches (Triton, TorchInductor's, torch extensions, CUDA's
    PTX cache).

    HOME too: flashinfer 0.2.x keeps its JIT cache in ~/.cache/flashinfer. TorchInductor
    (torch.compile) keeps its own under the temporary folder, which a worker gives each
    cell anew and removes, and a container per cell has only while it runs: every cell
    compiled everything again.
    """
    return {
        "HOME": home,
        "XDG_CACHE_HOME": cache,
        "TRITON_CACHE_DIR": f"{cache}/triton",
        "TORCHINDUCTOR_CACHE_DIR": f"{cache}/torchinductor",
        "TORCH_EXTENSIONS_DIR": f"{cache}/torch_extensions",
        "CUDA_CACHE_PATH": f"{cache}/nv",
    }


def cell_variables(
    cell: Cell,
    *,
    env_key: str,
    libraries: Mapping[str, Mapping[str, Any]],
    home: str,
    cache: str,
) -> dict[str, str]:
    """Everything a cell's process gets besides the base environment and --cell-env."""
    return {
        "PYTHONUNBUFFERED": "1",
        "REPROMATRIX_CELL": cell.id,
        "REPROMATRIX_KEY": cell.key,
        "REPROMATRIX_BASE": cell.base.name,
        "REPROMATRIX_ENV": env_key,
        "REPROMATRIX_LIBRARIES": json.dumps(
            {name: dict(facts) for name, facts in libraries.items()}, sort_keys=True
        ),
        **cache_variables(home=home, cache=cache),
    }
