"""Benchmarks whose results go to BENCHMARKS.md."""
