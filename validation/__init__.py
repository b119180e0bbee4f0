"""Data quality (issue 5): GX suites per stream, quarantine, validity, completeness, tamper rules.

Importing the package is cheap; ``validation.run`` (and ``suites``, ``expectations``,
``context``) import Great Expectations (seconds): import them inside task bodies. See
docs/validation.md.
"""
