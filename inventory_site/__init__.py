"""Relevo's Django project: settings and URL wiring only, no logic."""
