"""Contracts shared by every runtime (Function app, Spark jobs, local tools, benchmarks).

Standard library and pydantic only: this package is vendored into the Function app and shipped in
the Databricks wheel.
"""
