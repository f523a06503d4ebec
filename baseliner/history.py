"""One instance's timeline across snapshots: configuration revisions, state changes, absences.

Pure: the pipeline hands over the key's rows, the snapshots, the bodies of the documents on
either side of each configuration change, and the outcomes of the instance's scope.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from .diff import RUNNING_STATES, STOPPED_STATES, record_changes
from .model import (
    Change,
    HistoryEvent,
    InstanceRecord,
    Outcome,
    ScopeResult,
    SnapshotInfo,
    State,
    Timeline,
)

Point = tuple[int, int, str, State]
"""(snapshot id, document id, fingerprint, state), as ``Store.key_history`` returns them."""


def bodies_needed(points: Sequence[Point]) -> set[int]:
    """Documents whose bodies the timeline reads: either side of every configuration change,
    and the newest one (for the name)."""
    needed = {points[-1][1]} if points else set()
    for before, after in zip(points, points[1:], strict=False):
        if before[2] != after[2]:
            needed.update((before[1], after[1]))
    return needed


def timeline(
    points: Sequence[Point],
    snapshots: Sequence[SnapshotInfo],
    bodies: Mapping[int, InstanceRecord],
    outcomes: Mapping[int, Sequence[ScopeResult]],
) -> Timeline:
    """``points`` must be non-empty and ascending; ``snapshots`` every stored snapshot."""
    first_id = points[0][0]
    taken = {s.id: s.taken_at for s in snapshots}
    present = {p[0]: p for p in points}
    newest = bodies[points[-1][1]]
    events: list[HistoryEvent] = []
    revisions: dict[str, int] = {}
    revision_at: dict[int, int] = {}
    previous: Point | None = None
    missing: list[int] = []

    def close_missing() -> None:
        """One ``missing`` event per run of snapshots missing it for the same reason."""
        runs: list[tuple[list[int], str]] = []
        for snap in missing:
            reason = _absence(outcomes.get(snap, ()))
            if runs and runs[-1][1] == reason:
                runs[-1][0].append(snap)
            else:
                runs.append(([snap], reason))
        for run, reason in runs:
            events.append(HistoryEvent(
                run[0], taken.get(run[0], ""), "missing", detail=reason,
                until_snapshot_id=run[-1] if len(run) > 1 else None))
        missing.clear()

    for info in snapshots:
        if info.id < first_id:
            continue
        point = present.get(info.id)
        if point is None:
            missing.append(info.id)
            continue
        snap, doc, fp, state = point
        when = taken.get(snap, "")
        if previous is None:
            revisions[fp] = 1
            revision_at[1] = snap
            events.append(HistoryEvent(snap, when, "first_seen", 1,
                                       detail=f"revision 1, {state}"))
            previous = point
            continue
        if missing:
            close_missing()
            events.append(HistoryEvent(snap, when, "back", revisions.get(fp)))
        if fp != previous[2]:
            changes = tuple(record_changes(bodies[previous[1]], bodies[doc]))
            if fp in revisions:
                number = revisions[fp]
                detail = f"configuration of revision {number} (snapshot {revision_at[number]}) " \
                         "is back"
                kind = "reverted"
            else:
                number = len(revisions) + 1
                revisions[fp] = number
                revision_at[number] = snap
                detail = f"revision {number}"
                kind = "modified"
            disk = next((c for c in changes if c.path == "root_disk" and c.old and c.new), None)
            if disk is not None:
                detail += "; root disk swapped"
                kind = "reverted"
            events.append(HistoryEvent(snap, when, kind, number, changes, detail))
        if state != previous[3]:
            events.append(HistoryEvent(snap, when, _transition(previous[3], state),
                                       revisions[fp], (Change("state", str(previous[3]),
                                                              str(state)),)))
        previous = point
    close_missing()
    latest = snapshots[-1] if snapshots else None
    last = points[-1][0]
    return Timeline(
        key=newest.key,
        provider=newest.provider,
        account=newest.account,
        region=newest.region,
        instance_id=newest.instance_id,
        name=newest.name,
        events=tuple(events),
        revisions=len(revisions),
        first_seen=(first_id, taken.get(first_id, "")),
        last_seen=(last, taken.get(last, "")),
        latest_snapshot=(latest.id, latest.taken_at) if latest else (last, taken.get(last, "")),
    )


def _transition(before: State, after: State) -> str:
    if before in STOPPED_STATES and after in RUNNING_STATES:
        return "started"
    if before in RUNNING_STATES and after in STOPPED_STATES:
        return "stopped"
    return "state"


def _absence(results: Sequence[ScopeResult]) -> str:
    """Why an instance is not in a snapshot, as far as the scope outcome can tell."""
    if not results:
        return "scope not collected: not verified"
    worst = max(results, key=lambda r: {Outcome.OK: 0, Outcome.SKIPPED: 1,
                                        Outcome.FAILED: 2}[r.outcome])
    if worst.outcome is Outcome.OK:
        return "not listed although its scope was collected: deleted"
    if worst.outcome is Outcome.FAILED:
        return f"scope failed ({worst.detail}): not verified"
    return f"scope skipped ({worst.detail}): not verified"
