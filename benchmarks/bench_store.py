"""Ingest and diff at estate scale: 100,000 realistic EC2 records, snapshots with 1% churn.

Run by hand (not part of the test suite):

    python benchmarks/bench_store.py [--instances 100000] [--snapshots 10]

Prints ingest seconds per snapshot (the store's time, and separately the collector-side
normalise + redact time), diff seconds, peak RSS, and
the database size after 1 and after N snapshots. Targets on a 2-core machine: ingest ≤ 3 s
per 100k snapshot, diff ≤ 2 s, peak RSS ≤ 300 MB, each further 1%-churn snapshot ≤ 10 MB.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import sys
import tempfile
import time
from pathlib import Path

import orjson

from baseliner import pipeline
from baseliner.model import Outcome, Scope, ScopeResult
from baseliner.providers import aws
from baseliner.redact import redact
from baseliner.store import open_store

TEMPLATE = Path(__file__).parent.parent / "tests" / "data" / "aws" / "describe-instances.json"
ACCOUNTS = [f"{n:012d}" for n in range(100000000001, 100000000011)]
REGIONS = ["us-east-1", "us-east-2", "us-west-2", "eu-west-1", "eu-central-1",
           "ap-southeast-2", "ap-northeast-1", "sa-east-1", "ca-central-1", "eu-north-1"]
TYPES = ["t3.micro", "t3.medium", "m5.large", "m6i.xlarge", "c5.2xlarge", "r5.large"]


class Estate:
    """The synthetic estate, kept compact (a few fields per instance) so the benchmark's own
    memory does not hide the store's: provider documents are built as a collector would
    receive them, one scope at a time."""

    def __init__(self, n: int, seed: int = 7) -> None:
        self.rng = random.Random(seed)
        self.template = orjson.dumps(
            json.loads(TEMPLATE.read_text())["Reservations"][0]["Instances"][0]
        )
        self.serial = 0
        self.scopes: dict[tuple[str, str], dict[int, list]] = {}
        for _ in range(n):
            self.add()

    def add(self) -> None:
        self.serial += 1
        scope = (self.rng.choice(ACCOUNTS), self.rng.choice(REGIONS))
        self.scopes.setdefault(scope, {})[self.serial] = [
            self.rng.choice(TYPES), self.rng.choice(["platform", "data", "web", "ml"]),
            self.rng.choice("abc"), self.rng.randint(1000, 9999),
        ]

    def churn(self, modified: float, added: float, removed: float) -> None:
        everything = [(scope, serial) for scope, items in self.scopes.items() for serial in items]
        n = len(everything)
        for scope, serial in self.rng.sample(everything, int(n * modified)):
            fields = self.scopes[scope][serial]
            fields[0] = self.rng.choice([t for t in TYPES if t != fields[0]])
            fields[1] = f"owner-{self.rng.randint(0, 10**6)}"
        for scope, serial in self.rng.sample(everything, int(n * removed)):
            del self.scopes[scope][serial]
        for _ in range(int(n * added)):
            self.add()

    def documents(self, scope: tuple[str, str]) -> list[dict]:
        region = scope[1]
        out = []
        for serial, (itype, owner, zone, cost) in self.scopes[scope].items():
            raw = orjson.loads(self.template)
            raw["InstanceId"] = f"i-{serial:017x}"
            raw["InstanceType"] = itype
            raw["Placement"]["AvailabilityZone"] = region + zone
            ip = f"10.{serial >> 16 & 255}.{serial >> 8 & 255}.{serial & 255}"
            raw["PrivateIpAddress"] = ip
            interface = raw["NetworkInterfaces"][0]
            interface["PrivateIpAddress"] = ip
            interface["PrivateIpAddresses"] = [{"Primary": True, "PrivateIpAddress": ip}]
            interface["NetworkInterfaceId"] = f"eni-{serial:017x}"
            raw["BlockDeviceMappings"][0]["Ebs"]["VolumeId"] = f"vol-{serial:017x}"
            raw["Tags"] = [
                {"Key": "Name", "Value": f"svc-{serial % 997}-{serial}"},
                {"Key": "Owner", "Value": owner},
                {"Key": "CostCenter", "Value": str(cost)},
                {"Key": "Environment", "Value": ("prod", "staging", "dev")[serial % 3]},
            ]
            out.append(raw)
        return out


def ingest(store, estate: Estate) -> tuple[int, float, float]:
    """Normalise and store every scope as the collector does; returns (id, normalise s,
    store s)."""
    normalising = 0.0
    scopes = []
    with store.writer("2026-12-03T00:00:00Z", "benchmark") as writer:
        for (account, region) in sorted(estate.scopes):
            docs = estate.documents((account, region))
            started = time.perf_counter()
            scope = Scope("aws", account, region)
            records = [aws.normalise(redact(raw), scope) for raw in docs]
            normalising += time.perf_counter() - started
            writer.add(records)
            scopes.append(ScopeResult(scope, Outcome.OK, "", len(records)))
        snapshot_id = writer.commit(scopes)
    return snapshot_id, normalising, writer.seconds


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=100_000)
    parser.add_argument("--snapshots", type=int, default=10)
    args = parser.parse_args()
    t0 = time.perf_counter()
    estate = Estate(args.instances)
    print(f"estate: {args.instances} instances in {len(estate.scopes)} scopes "
          f"(generated in {time.perf_counter() - t0:.1f} s)")
    with tempfile.TemporaryDirectory() as tmp, open_store(Path(tmp) / "b.db", create=True) as st:
        first, norm, write = ingest(st, estate)
        print(f"snapshot 1 (all new): store {write:.2f} s; normalise+redact {norm:.2f} s")
        size_1 = st.size()
        print(f"database after 1 snapshot: {size_1 / 1e6:.1f} MB")
        estate.churn(0.01, 0.005, 0.005)
        second, norm, write = ingest(st, estate)
        print(f"snapshot 2 (1% modified, 0.5% added, 0.5% removed): store {write:.2f} s; "
              f"normalise+redact {norm:.2f} s")
        started = time.perf_counter()
        report = pipeline.diff(st, first, second)
        elapsed = time.perf_counter() - started
        counts: dict[str, int] = {}
        for finding in report.findings:
            counts[finding.kind] = counts.get(finding.kind, 0) + 1
        print(f"diff 1 -> 2: {elapsed:.2f} s, findings {dict(sorted(counts.items()))}")
        sizes = [size_1, st.size()]
        for _ in range(3, args.snapshots + 1):
            estate.churn(0.01, 0.0, 0.0)
            _, _, write = ingest(st, estate)
            sizes.append(st.size())
        growth = [(b - a) / 1e6 for a, b in zip(sizes[1:], sizes[2:], strict=False)]
        print(f"store time of the last 1%-churn snapshot: {write:.2f} s")
        print(f"database after {args.snapshots} snapshots: {sizes[-1] / 1e6:.1f} MB; "
              f"growth per further 1%-churn snapshot: max {max(growth, default=0):.2f} MB, "
              f"mean {sum(growth) / max(len(growth), 1):.2f} MB")
    print(f"peak RSS: {peak_rss_mb():.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
