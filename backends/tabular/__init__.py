"""TAMS over tables: the store logic (``store``) written against a narrow table engine (``engine``).

``engine`` defines what a table engine offers (Arrow schemas, inserts, predicate selects that a
VAST DB cluster can push down, updates and deletes by row id, transactions); ``sqlite_engine`` is
the embedded implementation behind the ``local`` backend (``duckdb_engine`` only reads stores
written before it, to migrate them). ``store`` composes every TAMS operation
over those tables from one module per resource (``sources``, ``flows``, ``segments``, ``objects``,
``deletions``, ``webhooks``, ``service``) around a shared ``core`` and the ``tables``; none of
them names an engine, so another engine (VAST DB) plugs in unchanged.
"""
