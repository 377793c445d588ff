"""repromatrix: reproduce numerical regressions of GPU libraries across a matrix."""

__version__ = "0.1.0"
