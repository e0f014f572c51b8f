"""Relevo agent: collects a schema-v1 snapshot of this host and sends it to the server.

It runs from a copied ``agent/`` folder as ``python -m agent`` and needs only
``psutil`` and ``requests``, so it stays easy to deploy on any host we monitor.
"""

__version__ = "1.0.0"
