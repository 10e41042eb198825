#!/usr/bin/env python
"""Validation cost against estimate cost, side by side on one 150,000-row partition.

The benchmark is :mod:`pzlib.bench.validation` (its docstring says what is measured and how); this is its command.
"""

import sys

from pzlib.bench.validation import main

if __name__ == "__main__":
    sys.exit(main())
