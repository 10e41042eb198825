"""pz-platform's library: catalogs, stage I cleaning, RAIL estimation, PDFs, registry, storage, cluster jobs.

Everything real lives here and runs without Airflow; ``dags/`` and ``plugins/`` are thin callers.
"""

__version__ = "0.1.0"
