#!/usr/bin/env python
"""Stage III on the local Airflow backend: what each mapped task costs beyond its compute.

The benchmark is :mod:`pzlib.bench.airflow_tasks` (its docstring says what is measured and how); this is its command.
"""

import sys

from pzlib.bench.airflow_tasks import main

if __name__ == "__main__":
    sys.exit(main())
