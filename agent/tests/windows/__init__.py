"""Harness that runs the agent on Windows CPython under Wine."""
