"""Operator tools around the pipeline: ``audit-stream generate``, ``tail`` and ``demo``.

* :mod:`audit_stream.tools.generate` — realistic Istio-shaped traffic over OTLP/gRPC, paced and
  bounded, with a report of what the receiver accepted.
* :mod:`audit_stream.tools.view` — pure: one SIEM record (OCSF, ECS or native) or one packed
  ``audit.events`` message -> :class:`~audit_stream.tools.view.EventView` -> one readable line.
* :mod:`audit_stream.tools.tail` — follows a topic and prints views (thin Kafka consumption).
* :mod:`audit_stream.tools.demo` — the local demo: topics, receiver and worker processes, sample
  traffic, a summary counted from the SIEM topic (child processes in
  :mod:`audit_stream.tools.procs`).

Nothing here runs at import; the CLI imports these modules lazily from its handlers.
"""
