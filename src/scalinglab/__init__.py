"""scalinglab: train → sweep → fit → plan → report, the scaling-law loop in one toolkit.

Importing the package is light: torch is only imported by ``data``, ``model``, ``train`` and ``parallel``.
"""

__version__ = "0.1.0"
