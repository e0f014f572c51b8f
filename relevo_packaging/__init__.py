"""Builds the agent's installable packages into ``dist/`` (``make packages``).

Build-time code only: nothing here is shipped or imported by the server or
the agent. ``embed`` obtains the Windows CPython and wheels (shared with the
Wine test harness), ``windows`` lays out the zip and the MSI.
"""
