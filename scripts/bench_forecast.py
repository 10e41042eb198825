#!/usr/bin/env python
"""The runtime model against a real run: pz forecast next to a measured 100-partition stage III on Slurm.

The check is :mod:`pzlib.bench.forecast_check` (its docstring says what is measured and how); this is its command.
"""

import sys

from pzlib.bench.forecast_check import main

if __name__ == "__main__":
    sys.exit(main())
