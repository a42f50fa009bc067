"""Prometheus metrics, one registry per app so tests and several apps never collide."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class AppMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "qudao_http_requests", "HTTP requests", ["method", "route", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "qudao_http_request_duration_seconds", "HTTP latency", ["method", "route"], registry=self.registry
        )
        self.jobs = Counter(
            "qudao_job_runs", "Scheduled job runs", ["job", "outcome"], registry=self.registry
        )
        self.outbox = Counter(
            "qudao_notifications",
            "Notifications by final status",
            ["channel", "status"],
            registry=self.registry,
        )
        self.info = Gauge("qudao_up", "1 while the app is serving", registry=self.registry)

    def observe_request(self, method: str, route: str, status: int, elapsed: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route).observe(elapsed)
