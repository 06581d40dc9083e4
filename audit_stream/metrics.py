"""Named counters per stage, exposed in the Prometheus text format.

Counting replaces logging per record: a stage increments a counter (received, published, rejected,
joined, expired, dead-lettered, ...) and operators scrape ``/metrics``. Deliberately tiny: counters
and gauges with fixed label sets, no client library, no locks (one event loop owns them).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

__all__ = ["Registry"]

LabelKey = tuple[tuple[str, str], ...]


class _Metric:
    __slots__ = ("help", "kind", "name", "values")

    def __init__(self, name: str, kind: str, help_: str) -> None:
        self.name, self.kind, self.help = name, kind, help_
        self.values: dict[LabelKey, float] = {}


class Registry:
    """Counters and gauges by name and labels.

    Example::

        >>> r = Registry("audit_stream")
        >>> r.inc("received_records_total", 3, signal="logs")
        >>> r.get("received_records_total", signal="logs")
        3.0
    """

    def __init__(self, namespace: str = "audit_stream") -> None:
        self._ns = namespace
        self._metrics: dict[str, _Metric] = {}
        self._gauges: dict[str, tuple[str, Callable[[], float]]] = {}

    def describe(self, name: str, help_: str, kind: str = "counter") -> None:
        self._metrics.setdefault(name, _Metric(name, kind, help_)).help = help_

    def inc(self, name: str, value: float = 1, **labels: str) -> None:
        m = self._metrics.get(name)
        if m is None:
            m = self._metrics[name] = _Metric(name, "counter", name.replace("_", " "))
        key = tuple(sorted(labels.items()))
        m.values[key] = m.values.get(key, 0.0) + value

    def gauge(self, name: str, help_: str, read: Callable[[], float]) -> None:
        """A value read at scrape time (queue depth, in-flight bytes)."""
        self._gauges[name] = (help_, read)

    def get(self, name: str, **labels: str) -> float:
        m = self._metrics.get(name)
        if m is None:
            return 0.0
        return m.values.get(tuple(sorted(labels.items())), 0.0)

    def snapshot(self) -> dict[str, float]:
        """Flat ``name{labels}`` -> value, for JSON endpoints and summaries."""
        out: dict[str, float] = {}
        for line in self._lines(with_meta=False):
            name, _, value = line.rpartition(" ")
            out[name.removeprefix(self._ns + "_")] = float(value)
        return out

    def render(self) -> str:
        return "\n".join(self._lines(with_meta=True)) + "\n"

    def _lines(self, with_meta: bool) -> Iterable[str]:
        for m in self._metrics.values():
            full = f"{self._ns}_{m.name}"
            if with_meta:
                yield f"# HELP {full} {m.help}"
                yield f"# TYPE {full} {m.kind}"
            for key, value in m.values.items():
                yield f"{full}{_labels(key)} {_number(value)}"
        for name, (help_, read) in self._gauges.items():
            full = f"{self._ns}_{name}"
            if with_meta:
                yield f"# HELP {full} {help_}"
                yield f"# TYPE {full} gauge"
            yield f"{full} {_number(read())}"


def _number(value: float) -> str:
    # Counters pass a million quickly; "%g" would round them to six significant digits.
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _labels(key: LabelKey) -> str:
    if not key:
        return ""
    inner = ",".join(f'{k}="{v}"' for k, v in key)
    return "{" + inner + "}"
