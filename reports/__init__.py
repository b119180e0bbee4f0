"""The monthly report to the bureau and the public-disclosure tables (xlsx, PDF, HTML, charts).

Entry points: :func:`reports.monthly.build_report` (pure of any database) and
:func:`reports.cli.main` (``lantian report``), which reads the warehouse first.
"""
