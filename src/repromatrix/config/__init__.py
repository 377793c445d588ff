"""matrix.yaml → `Matrix`: YAML with positions, the pydantic shape, cross-checks.

Loaded and validated once; every problem is one line naming file:line:column and the fix.
"""

from repromatrix.config.build import build_matrix
from repromatrix.config.digest import script_digest
from repromatrix.config.load import load_matrix
from repromatrix.config.matrix import Matrix, Rule

__all__ = ["Matrix", "Rule", "build_matrix", "load_matrix", "script_digest"]
