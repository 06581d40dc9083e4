"""audit-stream: service-mesh telemetry in, an access-audit trail on Kafka out."""

__version__ = "0.1.0"

__all__ = ["__version__"]
