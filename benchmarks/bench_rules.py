"""Diff with every drift rule on, at estate scale: 100,000 EC2 records over several snapshots,
1% modified per snapshot, a tenth of those reverted (A → B → A) in the last one.

Run by hand (not part of the test suite):

    python benchmarks/bench_rules.py [--instances 100000] [--snapshots 5]

Prints the seconds of a plain diff (default rules), of the same diff with every rule
configured (expected regions, approved images, thresholds, justification, a baseline), of
``diff --against baseline``, and of ``report``. Target on a 2-core machine: rules add at most
a second to the plain diff of a 100k snapshot.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import tomllib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from bench_store import Estate, ingest, peak_rss_mb  # noqa: E402

from baseliner import pipeline, rules  # noqa: E402
from baseliner.store import open_store  # noqa: E402

RULES = """
expected_regions = {aws = ["us-*", "eu-*"]}
approved_images = {aws = ["ami-0abcdef1234567890"]}
justification_tag = "change-ticket"
[[thresholds]]
region = "us-*"
max_instances = 5000
max_created = 100
max_deleted = 100
[[thresholds]]
per = "account"
max_instances = 9000
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=100_000)
    parser.add_argument("--snapshots", type=int, default=5)
    args = parser.parse_args()
    config = rules.parse_config(tomllib.loads(RULES), "bench")
    estate = Estate(args.instances)
    with tempfile.TemporaryDirectory() as tmp, open_store(Path(tmp) / "b.db", create=True) as st:
        ids = [ingest(st, estate)[0]]
        st.set_baseline(ids[0], "bench", "", "2026-12-03T00:00:00Z")
        saved: list[tuple[list, list]] = []
        for n in range(2, args.snapshots + 1):
            if n == args.snapshots:  # put a tenth of the last changes back: reverts
                for fields, before in saved[: len(saved) // 10]:
                    fields[:] = before
            items = [f for scope in estate.scopes.values() for f in scope.values()]
            before_churn = {id(f): list(f) for f in items}
            estate.churn(0.01, 0.005, 0.005)
            saved = [(f, before_churn[id(f)]) for f in items if before_churn[id(f)] != f]
            ids.append(ingest(st, estate)[0])
        old, new = ids[-2], ids[-1]
        timings = {}
        for name, call in (
            ("plain diff", lambda: pipeline.diff(st, old, new)),
            ("diff, every rule", lambda: pipeline.diff(st, old, new, config)),
            ("diff --against baseline", lambda: pipeline.diff_against_baseline(st, new, config)),
            ("report", lambda: pipeline.inventory(st, new, config)),
        ):
            started = time.perf_counter()
            result = call()
            timings[name] = time.perf_counter() - started
            counts: dict[str, int] = {}
            for finding in result.findings:
                counts[finding.kind] = counts.get(finding.kind, 0) + 1
            print(f"{name}: {timings[name]:.2f} s, findings {dict(sorted(counts.items()))}")
    print(f"peak RSS: {peak_rss_mb():.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
