"""Stampede engine: launch concurrent agents, record what they did, check it.

Plain Python with no Robot Framework import, so every piece can be used and
tested on its own. The keyword libraries beside this package are thin facades.
"""
