#!/usr/bin/env python
"""Delivery to S3: pzlib.storage.transfer.deliver vs a plain one-file-at-a-time upload_file loop, on local moto.

The benchmark is :mod:`pzlib.bench.transfer` (its docstring says what is measured and how); this is its command.
"""

import sys

from pzlib.bench.transfer import main

if __name__ == "__main__":
    sys.exit(main())
