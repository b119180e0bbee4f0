"""Benchmarks with their baselines: ``python -m bench`` (``make bench``); see bench/README.md."""
