"""``GET /metrics``: Prometheus text format, read from the database at scrape time.

The numbers are gathered with one read transaction off the event loop, then
handed to prometheus_client as metric families, so the exposition format is
the library's, not ours.
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from calcifer_bot.core import Core
from calcifer_bot.models import Endpoint, Incident
from calcifer_bot.outbox import Backlog, backlog

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@dataclass(frozen=True, slots=True)
class _Row:
    name: str
    kind: str
    state: str
    latency_ms: float | None
    checked_at: float | None


def _read(session: Session) -> tuple[list[_Row], int, dict[str, Backlog]]:
    rows = [
        _Row(name, kind, state, latency, checked.timestamp() if checked else None)
        for name, kind, state, latency, checked in session.execute(
            select(
                Endpoint.name,
                Endpoint.kind,
                Endpoint.state,
                Endpoint.last_latency_ms,
                Endpoint.last_checked_at,
            )
        )
    ]
    incidents = session.scalar(
        select(func.count()).select_from(Incident).where(Incident.resolved_at.is_(None))
    )
    return rows, incidents or 0, backlog(session)


class _Snapshot(Collector):
    def __init__(self, metrics: list[Metric]) -> None:
        self.metrics = metrics

    def collect(self) -> list[Metric]:
        return self.metrics


async def render(core: Core) -> bytes:
    rows, incidents, queue = await core.db.read(_read)
    up = GaugeMetricFamily(
        "calcifer_endpoint_up",
        "1 when the endpoint is up, 0 when down",
        labels=["endpoint", "kind"],
    )
    latency = GaugeMetricFamily(
        "calcifer_endpoint_latency_seconds",
        "Latency of the last successful check",
        labels=["endpoint", "kind"],
    )
    checked = GaugeMetricFamily(
        "calcifer_endpoint_last_check_timestamp_seconds",
        "When the endpoint was last checked",
        labels=["endpoint", "kind"],
    )
    for row in rows:
        labels = [row.name, row.kind]
        if row.state in ("up", "down"):
            up.add_metric(labels, 1.0 if row.state == "up" else 0.0)
        if row.latency_ms is not None:
            latency.add_metric(labels, row.latency_ms / 1000)
        if row.checked_at is not None:
            checked.add_metric(labels, row.checked_at)
    checks = CounterMetricFamily("calcifer_checks", "Checks run by this process", labels=["result"])
    for result, count in core.scheduler.counts.items():
        checks.add_metric([result], count)
    open_incidents = GaugeMetricFamily("calcifer_incidents_open", "Incidents not yet resolved")
    open_incidents.add_metric([], incidents)
    outbox = GaugeMetricFamily(
        "calcifer_outbox_messages", "Messages waiting for delivery, or given up", labels=["status"]
    )
    outbox.add_metric(["pending"], sum(b.pending for b in queue.values()))
    outbox.add_metric(["dead"], sum(b.dead for b in queue.values()))
    # Per destination, so an alert rule can say which webhook or channel is stuck.
    per_destination = GaugeMetricFamily(
        "calcifer_outbox_destination_messages",
        "Messages waiting for delivery, or given up, by destination",
        labels=["destination", "status"],
    )
    for b in queue.values():
        per_destination.add_metric([b.destination, "pending"], b.pending)
        per_destination.add_metric([b.destination, "dead"], b.dead)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(
        _Snapshot([up, latency, checked, checks, open_incidents, outbox, per_destination])
    )
    return generate_latest(registry)
