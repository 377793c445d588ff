"""matrix.yaml → `Matrix`: YAML with positions, the pydantic shape, cross-checks.

Loaded and validated once; every problem is one line naming file:line:column and the fix.
"""

from repromatrix.config.build import Matrix, Rule, build_matrix, load_matrix
from repromatrix.config.digest import script_digest

__all__ = ["Matrix", "Rule", "build_matrix", "load_matrix", "script_digest"]
