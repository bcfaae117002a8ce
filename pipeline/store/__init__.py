"""The embedded store (SQLite): issues, timelines, crawl state, embeddings, predictions."""

from pipeline.store.db import connect, schema_version, transaction

__all__ = ["connect", "schema_version", "transaction"]
