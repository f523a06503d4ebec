"""Prometheus metrics of the daemon, served on 127.0.0.1 when ``[daemon] metrics_port`` is set.

A registry of its own (not prometheus-client's global one), so several daemons in one test
process never collide; prometheus-client is imported only when metrics are enabled.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

from .model import Finding, Outcome, ScopeResult

logger = logging.getLogger(__name__)

HOST = "127.0.0.1"
_DURATION_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200)


class Metrics:
    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.last_success = Gauge(
            "baseliner_last_success_timestamp_seconds",
            "Unix time the last cycle that stored a snapshot finished", registry=r)
        self.last_cycle = Gauge(
            "baseliner_last_cycle_timestamp_seconds",
            "Unix time the last cycle finished, whatever its outcome", registry=r)
        self.cycles = Counter("baseliner_cycles_total", "Cycles run, by outcome",
                              ["outcome"], registry=r)
        self.duration = Histogram("baseliner_cycle_duration_seconds",
                                  "Duration of a cycle (collect, store, diff, alerts)",
                                  buckets=_DURATION_BUCKETS, registry=r)
        self.instances = Gauge("baseliner_instances",
                               "Instances in the last snapshot, per scope",
                               ["provider", "account", "region"], registry=r)
        self.findings = Gauge("baseliner_findings",
                              "Findings of the last cycle, per kind and severity",
                              ["kind", "severity"], registry=r)
        self.failed_scopes = Gauge("baseliner_failed_scopes",
                                   "Scopes that failed in the last snapshot, per provider",
                                   ["provider"], registry=r)
        self.scope_failures = Counter("baseliner_scope_failures_total",
                                      "Scope collections that failed, per scope",
                                      ["provider", "account", "region"], registry=r)
        self.alert_failures = Counter("baseliner_alert_delivery_failures_total",
                                      "Alert deliveries that failed, per sink", ["sink"],
                                      registry=r)
        self.alerts = Counter("baseliner_alerts_sent_total", "Alerts delivered, per sink",
                              ["sink"], registry=r)
        self._server: Any = None

    def serve(self, port: int) -> int:
        """Serve /metrics on 127.0.0.1:port (0 = any free port); returns the port."""
        from prometheus_client import start_http_server

        server, _thread = start_http_server(port, addr=HOST, registry=self.registry)
        self._server = server
        port = server.server_address[1]
        logger.info("metrics on http://%s:%d/metrics", HOST, port)
        return port

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def cycle(self, outcome: str, duration: float, finished: float) -> None:
        self.cycles.labels(outcome).inc()
        self.duration.observe(duration)
        self.last_cycle.set(finished)
        if outcome in ("ok", "partial"):
            self.last_success.set(finished)

    def snapshot(self, scopes: Sequence[ScopeResult]) -> None:
        self.instances.clear()
        self.failed_scopes.clear()
        failed: Counter[str] = Counter()
        for result in scopes:
            scope = result.scope
            if result.outcome is Outcome.FAILED:
                failed[scope.provider] += 1
                self.scope_failures.labels(scope.provider, scope.account, scope.region).inc()
            elif result.outcome is Outcome.OK:
                self.instances.labels(scope.provider, scope.account, scope.region).set(
                    result.instance_count)
        for provider in {r.scope.provider for r in scopes}:
            self.failed_scopes.labels(provider).set(failed[provider])

    def found(self, findings: Iterable[Finding]) -> None:
        self.findings.clear()
        for (kind, severity), n in Counter((f.kind, str(f.severity)) for f in findings).items():
            self.findings.labels(kind, severity).set(n)

    def delivered(self, sink: str, ok: bool, count: int) -> None:
        if ok:
            self.alerts.labels(sink).inc(count)
        else:
            self.alert_failures.labels(sink).inc()
