"""The ingest's fleet metrics (docs/operations.md, "Fleet mode": what each one means), on the loop's registry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from conductor_loop.metrics import PROCESSING_BUCKETS

#: ``conductor_fleet_results_total`` outcomes: accepted (ok, failed: porch failed, superseded: a newer
#: intent's package kept), refused (hostile archive), stale (the intent changed), malformed (not a result).
RESULT_OUTCOMES = ("ok", "failed", "superseded", "refused", "stale", "malformed")


class FleetMetrics:
    """``conductor_fleet_*``: tasks out, results by outcome, duplicates, redeliveries, max-deliveries,
    republishes, round trips, and whether the broker is reachable."""

    def __init__(self, registry: CollectorRegistry | None) -> None:
        """The metrics on ``registry`` (the loop's when it is served; None: a registry of their own)."""
        registry = registry if registry is not None else CollectorRegistry()
        self.inflight = Gauge("conductor_fleet_inflight", "Tasks published to the fleet and not yet decided.",
                              registry=registry)
        self.results = Counter("conductor_fleet_results_total",
                               "Results of in-flight tasks received, by outcome (ok, failed, superseded, refused, "
                               "stale, malformed).", ["outcome"], registry=registry)
        for o in RESULT_OUTCOMES:
            self.results.labels(outcome=o)
        self.duplicates = Counter("conductor_fleet_duplicate_results_total",
                                  "Results dropped because their task was no longer in flight (late or duplicate).",
                                  registry=registry)
        self.redeliveries = Counter("conductor_fleet_redeliveries_total",
                                    "Deliveries of tasks beyond the first (a worker lost its lease or died), "
                                    "as reported by accepted results.", registry=registry)
        self.max_deliveries = Counter("conductor_fleet_max_deliveries_total",
                                      "Tasks that reached --fleet-max-deliver without a result (filed in failed/).",
                                      registry=registry)
        self.republishes = Counter("conductor_fleet_republishes_total",
                                   "Tasks published again: after a failed publish, or lost by the broker "
                                   "(ingest-side deadline).", registry=registry)
        self.roundtrip = Histogram("conductor_fleet_roundtrip_seconds",
                                   "Seconds from a task's first publish to its accepted result.",
                                   buckets=PROCESSING_BUCKETS, registry=registry)
        self.broker_up = Gauge("conductor_fleet_broker_up", "1 while the broker is reachable and the fleet's streams "
                               "are set up, else 0.", registry=registry)
