# -*- test-case-name: tests.test_metrics -*-
"""
A small Prometheus registry that renders the text exposition format
(version 0.0.4) for C{GET /metrics}.

Counters are bumped on the hot path, so they are plain dict updates. Most
gauges are collected at scrape time from callbacks (how many clusters are in
each state, how many streams are open), so nothing is counted twice and
nothing is updated per event for 10,000 clusters.
"""

from __future__ import annotations

import math
from typing import Callable, Iterable, Mapping, Optional, Union

Labels = tuple[tuple[str, str], ...]
Number = Union[int, float]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _escape_help(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n")


def _format_value(value: Number) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "+Inf" if value > 0 else "-Inf"
        if value.is_integer():
            return str(int(value))
    return repr(value) if isinstance(value, float) else str(value)


def _format_labels(labels: Labels) -> str:
    if not labels:
        return ""
    inner = ",".join(f'{name}="{_escape_label(value)}"' for name, value in labels)
    return "{" + inner + "}"


class _Metric:
    kind = "untyped"

    def __init__(self, name: str, help: str, label_names: Iterable[str] = ()) -> None:
        self.name = name
        self.help = help
        self.label_names = tuple(label_names)

    def _key(self, labels: Mapping[str, str]) -> Labels:
        if set(labels) != set(self.label_names):
            raise ValueError(
                f"{self.name} takes labels {self.label_names}, got {tuple(sorted(labels))}"
            )
        return tuple((name, str(labels[name])) for name in self.label_names)

    def samples(self) -> Iterable[tuple[Labels, Number]]:
        raise NotImplementedError

    def render(self) -> str:
        lines = [f"# HELP {self.name} {_escape_help(self.help)}", f"# TYPE {self.name} {self.kind}"]
        for labels, value in self.samples():
            lines.append(f"{self.name}{_format_labels(labels)} {_format_value(value)}")
        return "\n".join(lines) + "\n"


class Counter(_Metric):
    """
    A monotonically increasing count; names end in C{_total}. Either
    incremented here, or read at scrape time from C{collect} (a bare
    number; for counts another object keeps).
    """

    kind = "counter"

    def __init__(
        self,
        name: str,
        help: str,
        label_names: Iterable[str] = (),
        collect: Optional[Callable[[], Number]] = None,
    ) -> None:
        super().__init__(name, help, label_names)
        self._values: dict[Labels, Number] = {}
        self._collect = collect
        if collect is not None and self.label_names:
            raise ValueError("a collected counter has no labels")

    def inc(self, amount: Number = 1, **labels: str) -> None:
        if amount < 0:
            raise ValueError("counters only go up")
        key = self._key(labels)
        self._values[key] = self._values.get(key, 0) + amount

    def value(self, **labels: str) -> Number:
        return self._values.get(self._key(labels), 0)

    def samples(self) -> Iterable[tuple[Labels, Number]]:
        if self._collect is not None:
            return [((), self._collect())]
        return sorted(self._values.items())


class Gauge(_Metric):
    """
    A value that goes up and down: either set directly, or read at scrape
    time from C{collect}, which returns C{{label values: value}} (label
    values in C{label_names} order) or a bare number when there are no labels.
    """

    kind = "gauge"

    def __init__(
        self,
        name: str,
        help: str,
        label_names: Iterable[str] = (),
        collect: Optional[Callable[[], Union[Number, Mapping[tuple[str, ...], Number]]]] = None,
    ) -> None:
        super().__init__(name, help, label_names)
        self._values: dict[Labels, Number] = {}
        self._collect = collect

    def set(self, value: Number, **labels: str) -> None:
        self._values[self._key(labels)] = value

    def inc(self, amount: Number = 1, **labels: str) -> None:
        key = self._key(labels)
        self._values[key] = self._values.get(key, 0) + amount

    def dec(self, amount: Number = 1, **labels: str) -> None:
        self.inc(-amount, **labels)

    def samples(self) -> Iterable[tuple[Labels, Number]]:
        if self._collect is None:
            return sorted(self._values.items())
        collected = self._collect()
        if not isinstance(collected, Mapping):
            return [((), collected)]
        return sorted(
            (tuple(zip(self.label_names, (str(v) for v in values))), value)
            for values, value in collected.items()
        )


class Registry:
    """The metrics one process exposes."""

    def __init__(self) -> None:
        self._metrics: dict[str, _Metric] = {}

    def register(self, metric: _Metric) -> _Metric:
        if metric.name in self._metrics:
            raise ValueError(f"metric {metric.name} registered twice")
        self._metrics[metric.name] = metric
        return metric

    def counter(
        self,
        name: str,
        help: str,
        label_names: Iterable[str] = (),
        collect: Optional[Callable[[], Number]] = None,
    ) -> Counter:
        metric = Counter(name, help, label_names, collect)
        self.register(metric)
        return metric

    def gauge(
        self,
        name: str,
        help: str,
        label_names: Iterable[str] = (),
        collect: Optional[Callable[[], Union[Number, Mapping[tuple[str, ...], Number]]]] = None,
    ) -> Gauge:
        metric = Gauge(name, help, label_names, collect)
        self.register(metric)
        return metric

    def get(self, name: str) -> _Metric:
        return self._metrics[name]

    def render(self) -> bytes:
        return "".join(metric.render() for metric in self._metrics.values()).encode("utf-8")
