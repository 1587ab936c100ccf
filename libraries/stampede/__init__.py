"""Stampede engine: launch concurrent agents, record what they did, check it.

Plain Python with no Robot Framework import, so every piece can be used and
tested on its own. The keyword libraries beside this package are thin facades.
"""

__version__ = "0.1.0"
"""Stampede's version, written here only: the package's, and every keyword library's ``ROBOT_LIBRARY_VERSION``."""
