#!/usr/bin/env python
"""Training Set Maker overhead: a 1e6 × 1e5 cross-match through the DAG task path vs lsdb.

The benchmark is :mod:`pzlib.bench.crossmatch` (its docstring says what is measured and how); this is its command.
"""

import sys

from pzlib.bench.crossmatch import main

if __name__ == "__main__":
    sys.exit(main())
