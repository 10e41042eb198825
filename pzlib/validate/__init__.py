"""Validation of products and stage outputs: photo-z science metrics (and, later, Great Expectations suites)."""
