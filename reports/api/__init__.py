"""The HTTP API: /upload for agents, /query for readers, health probes."""
