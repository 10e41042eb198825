"""Training Set Maker (TSM) and Combine Redshift Catalogs (CRC): LSDB cross-matches on HATS catalogs.

Each pipeline takes one typed request, checked before any data is read (:mod:`pzlib.crossmatch.config`):
:func:`pzlib.crossmatch.tsm.make_training_set` cross-matches a spec-z catalog with a release's object catalog
into a training set; :func:`pzlib.crossmatch.crc.combine_catalogs` merges N spec-z catalogs, marking or
removing duplicates ranked by homogenized quality flag (:mod:`pzlib.crossmatch.flags`). Both write their
output atomically with a report beside it, and a rerun of a finished request keeps what exists and verifies.
:mod:`pzlib.crossmatch.sample_data` builds test and benchmark catalogs with real structure from RAIL's DC2
sample.

This package's ``__init__`` loads only the request types, so checking a request stays cheap; the pipelines
are in their own modules.
"""

from pzlib.crossmatch.config import CrcConfig, SpeczColumns, SpeczInput, TsmConfig

__all__ = ["CrcConfig", "SpeczColumns", "SpeczInput", "TsmConfig"]
