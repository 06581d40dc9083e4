"""Faust wiring for audit-stream: the app factory and its agents (thin; logic lives in audit_stream)."""
