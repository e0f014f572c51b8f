"""Alerts on inventory changes: rules, their outbox, and delivery by webhook and e-mail (docs/alerts.md)."""
