"""Benchmarks: one harness (bench/harness.py), one module per stage, results in bench/results/."""
