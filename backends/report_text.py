"""A store report (``backends.report``) as text for people: each duration in seconds (or minutes)
beside its exact TAMS timestamp, each byte count exactly and in binary units."""

from __future__ import annotations

from typing import Any

Json = dict[str, Any]


def _d(value: Json | None) -> str:
    """A duration for people: seconds with the exact TAMS timestamp."""
    if value is None:
        return "-"
    ns = value["ns"]
    return f"{_human_seconds(ns)} ({value['timestamp']})"


def _human_seconds(ns: int) -> str:
    seconds = ns / 1e9
    if abs(seconds) >= 3600:
        return f"{seconds / 3600:.2f} h"
    if abs(seconds) >= 60:
        return f"{seconds / 60:.2f} min"
    return f"{seconds:.3f} s"


def _b(value: Json) -> str:
    known, unknown = value["known"], value["objects_of_unknown_size"]
    if unknown and not known:
        return f"unknown ({unknown} object(s) of unknown size)"
    if unknown:
        return f"{_size(known)} known + {unknown} object(s) of unknown size"
    return _size(known or 0)


def _size(count: int) -> str:
    """Bytes exactly, and in binary units for people."""
    scaled, unit = float(count), "B"
    for bigger in ("KiB", "MiB", "GiB", "TiB", "PiB"):
        if scaled < 1024:
            break
        scaled, unit = scaled / 1024, bigger
    return f"{count:,} bytes" + (f" ({scaled:.2f} {unit})" if unit != "B" else "")


def _timeline_lines(entry: Json, indent: str) -> list[str]:
    lines = [f"{indent}segments {entry['segments']}, duration {_d(entry['duration'])}"]
    timeline = entry["timeline"]
    if timeline is not None:
        lines.append(
            f"{indent}timeline {timeline['timerange']} length {_d(timeline['length'])}, "
            f"covered {_d(timeline['covered'])}"
        )
    gaps = entry["gaps"]
    lines.append(f"{indent}gaps {gaps['count']}, total {_d(gaps['total'])}")
    for gap in gaps["largest"]:
        lines.append(f"{indent}  gap {gap['timerange']} ({_d(gap['length'])})")
    stats = entry["segment_durations"]
    if stats is not None:
        lines.append(
            f"{indent}segment durations: min {_d(stats['min'])}, median {_d(stats['median'])}, "
            f"mean {_d(stats['mean'])}, p95 {_d(stats['p95'])}, max {_d(stats['max'])}"
        )
    return lines


def text(report: Json, hours: int = 24) -> str:
    """The report for people (``hours``: the latest hours of ingest shown)."""
    t = report["totals"]
    lines = [
        f"TAMS store report ({report['backend']}), {report['generated_at']}",
        f"{t['sources']} source(s), {t['flows']} flow(s), {t['segments']} segment(s), duration {_d(t['duration'])}",
        f"{t['objects']} object(s): {t['objects_registered']} registered, "
        f"{t['objects'] - t['objects_registered']} allocated but never registered, {t['objects_external']} external",
    ]
    if report["segment_durations"]:
        s = report["segment_durations"]
        lines.append(
            f"segment durations: min {_d(s['min'])}, median {_d(s['median'])}, mean {_d(s['mean'])}, "
            f"p95 {_d(s['p95'])}, max {_d(s['max'])}"
        )
    lines.append("")
    lines.append("Sources")
    for source in report["sources"]:
        lines.append(f"  {source['id']} {source['label'] or ''} ({source['flows']} flow(s))".rstrip())
        lines += _timeline_lines(source, "    ")
        if source["segments_beyond_int64"]:
            lines.append(f"    segments beyond the int64 ns range (not timed): {source['segments_beyond_int64']}")
    lines.append("")
    lines.append("Flows")
    for flow in report["flows"]:
        lines.append(f"  {flow['id']} {flow['label'] or ''} [{flow['format'] or '?'}] source {flow['source_id']}")
        lines += _timeline_lines(flow, "    ")
        objects = flow["objects"]
        lines.append(
            f"    objects {objects['count']} ({objects['shared_with_other_flows']} shared with other flows), "
            f"allocated but unregistered {flow['unregistered_objects']}"
        )
        if flow["segments_beyond_int64"]:
            lines.append(f"    segments beyond the int64 ns range (not timed): {flow['segments_beyond_int64']}")
    lines.append("")
    lines.append("Storage backends")
    for store in report["storage"]:
        lines.append(
            f"  {store['label'] or '?'} ({store['id']}, {store['product'] or '?'}): {store['objects']} object(s), "
            f"{store['registered']} registered ({store['unreferenced']} unreferenced), "
            f"{store['allocated_unregistered']} allocated but unregistered; bytes {_b(store['bytes'])}"
        )
    shared = report["shared_objects"]
    lines.append("")
    lines.append(
        f"Objects shared between flows: {shared['count']} ({shared['segments']} segments), bytes {_b(shared['bytes'])}"
    )
    u = report["unregistered_objects"]
    line = f"Objects allocated but never registered: {u['count']}"
    if u["count"]:
        line += (
            f" (oldest {u['oldest_age_s']:.0f} s ago, at {u['oldest_allocated_at']}; "
            f"median age {u['median_age_s']:.0f} s; newest {u['newest_age_s']:.0f} s ago)"
        )
        if "past_ttl" in u:
            line += f"; {u['past_ttl']} past the {u['ttl_s']:.0f} s reclamation delay"
    lines.append(line)
    ingest = report["ingest"]
    lines.append("")
    lines.append(f"Ingest per hour (by {ingest['basis']}; last {hours} hour(s) with any)")
    for entry in ingest["hours"][-hours:]:
        lines.append(f"  {entry['hour']}  {entry['segments']:>9} segment(s)  bytes {_b(entry['bytes'])}")
    if report["notes"]:
        lines.append("")
        lines.append("Notes")
        lines += [f"  - {note}" for note in report["notes"]]
    return "\n".join(lines) + "\n"
