#!/usr/bin/env python
"""Stock RAIL estimator stages vs pzlib.fastpaths, side by side on the same batch.

The benchmark is :mod:`pzlib.bench.fastpaths` (its docstring says what is measured and how); this is its command.
"""

import sys

from pzlib.bench.fastpaths import main

if __name__ == "__main__":
    sys.exit(main())
