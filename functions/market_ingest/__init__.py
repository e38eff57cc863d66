"""Market-data ingestion of the Function app: providers, RAW landing and quote events.

The package is deployed inside the Function app and imported by the local runtime; it reads
configuration, ingestion tunables included, from :mod:`lakehouse.settings`.
"""
