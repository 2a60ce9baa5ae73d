"""The ClickHouse store: backends (chdb, server), migrations, rows, batching sink, views, purge."""
from pipeline.io.store.backends import Store, StoreError, StoreUnavailable, open_store
from pipeline.io.store.sink import BatchingSink, batch_token

__all__ = ["BatchingSink", "Store", "StoreError", "StoreUnavailable", "batch_token", "open_store"]
