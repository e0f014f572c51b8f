"""Benchmarks: scripts anyone can rerun; each prints its own figures."""
