"""Relevo's server app: snapshot ingest, day files, database mirror, pages and API."""
