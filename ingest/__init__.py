"""The ingest service: device registry and request signing, payload checks, durable landing.

``ingest.landing`` (the pipeline's read side) imports no web framework; ``ingest.app`` is the
FastAPI service and ``ingest.cli`` the ``lantian ingest`` command.
"""
