"""Requests answered, by route template, method and status: counted in plain numbers per
request, turned into Prometheus' counter and histogram only when /metrics is read.

prometheus_client's Counter and Histogram take a lock for each increment (three per request:
the count, the bucket, the sum), and under multiprocess mode write each one to a shared file.
A request here adds one to one bucket and its duration to a sum, on a tally made once per
(route, method, status); the count is the buckets' total (bench/router_overhead.py: 2.6 µs a
GET, service against bare).

Several workers: a scrape reaches one of them, so each worker writes its tallies to its own
file in the start's metrics directory (`requests-<pid>-<start time>.json`, replaced whole)
every second and as it stops, and the worker that answers adds the others' files to its own
tallies. The counts of another worker are thus at most a second late, and a worker killed
outright loses at most its last second; the file of a worker that stopped keeps its answers
counted.

Importing this module imports prometheus_client, which picks its mode then: service/metrics.py
imports it only once PROMETHEUS_MULTIPROC_DIR is decided.
"""

from __future__ import annotations

import bisect
import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from prometheus_client.metrics_core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

logger = logging.getLogger("service.metrics")

UNMATCHED = "unmatched"
LABELS = ("route", "method", "status")
FILE_PREFIX = "requests-"
Labels = tuple[str, str, str]


class _Tally:
    """The answers of one (route, method, status): a count per bucket, and their seconds."""

    __slots__ = ("buckets", "labels", "route", "seconds")

    def __init__(self, route: object, labels: Labels, bucket_count: int) -> None:
        self.route = route  # kept alive, so that its id (the tally's key) is not reused
        self.labels = labels
        self.buckets = [0] * (bucket_count + 1)  # the last: above every bound (+Inf)
        self.seconds = 0.0


class RequestTallies(Collector):
    """This worker's answers, and (with a directory) the other workers' from their files."""

    def __init__(
        self, buckets: tuple[float, ...], directory: Path | None, *, worker: str = ""
    ) -> None:
        """`worker` names this process for good (its pid and start time): a later worker
        given the same pid must not take the dead one's file for its own."""
        self.bounds = buckets
        self.directory = directory
        # By (id of the route, method, status): FastAPI's routes are not hashable.
        self._tallies: dict[tuple[int, str, int], _Tally] = {}
        name = f"{FILE_PREFIX}{worker or os.getpid()}.json"
        self._file = directory / name if directory else None

    def add(self, route: object, method: str, status: int, seconds: float) -> None:
        """One answer: `route` is what FastAPI matched (None: nothing)."""
        tally = self._tallies.get((id(route), method, status))
        if tally is None:
            tally = self._new_tally(route, method, status)
        tally.buckets[bisect.bisect_left(self.bounds, seconds)] += 1
        tally.seconds += seconds

    def _new_tally(self, route: object, method: str, status: int) -> _Tally:
        template = getattr(route, "path_format", None) or UNMATCHED
        tally = _Tally(route, (template, method, str(status)), len(self.bounds))
        self._tallies[(id(route), method, status)] = tally
        return tally

    def own(self) -> dict[Labels, tuple[list[int], float]]:
        """This worker's buckets and seconds by labels."""
        totals: dict[Labels, tuple[list[int], float]] = {}
        for tally in list(self._tallies.values()):
            _add(totals, tally.labels, tally.buckets, tally.seconds)
        return totals

    def save(self) -> None:
        """Write this worker's tallies where the other workers read them (several workers)."""
        if self._file is None:
            return
        series = [[*labels, buckets, seconds] for labels, (buckets, seconds) in self.own().items()]
        text = json.dumps({"bounds": self.bounds, "series": series})
        partial = self._file.with_suffix(".partial")
        partial.write_text(text)
        os.replace(partial, self._file)  # a reader sees the old file or the new, whole

    def _others(self) -> Iterator[tuple[Labels, list[int], float]]:
        if self.directory is None:
            return
        for path in self.directory.glob(f"{FILE_PREFIX}*.json"):
            if path == self._file:
                continue  # this worker's own: its memory is newer
            try:
                series = self._series_of(json.loads(path.read_text()))
            except (OSError, ValueError, TypeError, KeyError, AttributeError) as error:
                # Removed meanwhile, not ours, or another release's buckets: not addable.
                logger.debug("request counts in %s not read: %s", path, error)
                continue
            yield from series

    def _series_of(self, saved: Any) -> list[tuple[Labels, list[int], float]]:
        if tuple(saved["bounds"]) != self.bounds:
            raise ValueError("other buckets")
        series = []
        for route, method, status, buckets, seconds in saved["series"]:
            if len(buckets) != len(self.bounds) + 1:
                raise ValueError("other buckets")
            series.append(((str(route), str(method), str(status)), list(buckets), float(seconds)))
        return series

    def describe(self) -> list[Metric]:
        return [self._counter(), self._histogram()]

    def collect(self) -> Iterator[Metric]:
        totals = self.own()
        for labels, buckets, seconds in self._others():
            _add(totals, labels, buckets, seconds)
        counter, histogram = self._counter(), self._histogram()
        for labels, (buckets, seconds) in sorted(totals.items()):
            cumulative, running = [], 0
            for bound, count in zip((*self.bounds, float("inf")), buckets, strict=True):
                running += count
                cumulative.append((floatToGoString(bound), running))  # type: ignore[no-untyped-call]
            counter.add_metric(labels, running)
            histogram.add_metric(labels, cumulative, seconds)
        yield counter
        yield histogram

    @staticmethod
    def _counter() -> CounterMetricFamily:
        return CounterMetricFamily("http_requests", "Requests answered.", labels=LABELS)

    @staticmethod
    def _histogram() -> HistogramMetricFamily:
        return HistogramMetricFamily(
            "http_request_duration_seconds",
            "Seconds from a request's arrival to the end of its answer.",
            labels=LABELS,
        )


def _add(
    totals: dict[Labels, tuple[list[int], float]],
    labels: Labels,
    buckets: list[int],
    seconds: float,
) -> None:
    found = totals.get(labels)
    if found is None:
        totals[labels] = (list(buckets), seconds)
    else:
        summed = [a + b for a, b in zip(found[0], buckets, strict=True)]
        totals[labels] = (summed, found[1] + seconds)
