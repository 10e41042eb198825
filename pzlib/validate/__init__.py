"""Validation of products and stage outputs: Great Expectations suites, photo-z science metrics, reports."""
