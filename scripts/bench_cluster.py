#!/usr/bin/env python
"""Stage III on the Slurm backend: what submission and polling cost next to the compute.

The benchmark is :mod:`pzlib.bench.cluster` (its docstring says what is measured and how); this is its command.
"""

import sys

from pzlib.bench.cluster import main

if __name__ == "__main__":
    sys.exit(main())
