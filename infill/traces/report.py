"""`infill trace report DIR`: latency, cancellations and simulated acceptance, from
DIR/records.jsonl alone (see replay.py for its lines), so a replay run on one machine (a GPU
one without matplotlib, say) is reported on another.

Writes DIR/summary.json, DIR/index.html with two plots (latency_hist.png, latency_time.png;
matplotlib, when installed) and prints a table.

- Latency percentiles (nearest rank) are over the answered requests, those the editor shows
  (an answer before any newer change), by engine and by single-line / multi-line / empty.
- cancelled: the share of sent requests superseded by a newer change before their answer
  (the client sent `$/cancelRequest`), whatever the server answered then.
- accepted: the share of shown suggestions (answered, not empty) that are a prefix of what the
  user typed next. Type-through answers (engine "cache": the rest of a suggestion already
  shown, which the user is typing into) are not new suggestions and are counted apart
  (`typeThrough`). Characters saved: the typed characters those suggestions cover, each
  counted once (two accepted suggestions at nearby spots of one run overlap), also as a share
  of all the characters the trace typed.
"""

from __future__ import annotations

import html
import json
import math
from collections import Counter, defaultdict
from pathlib import Path

PERCENTILES = (50, 75, 95, 99)
ENGINE_ORDER = ("speculative", "diffusion", "cache", "none")
LINES_ORDER = ("single", "multi", "empty")


class ReportError(ValueError):
    pass


def load(directory: Path) -> tuple[dict, list[dict], dict | None]:
    """(the replay line, the request records, the end line or None) of DIR/records.jsonl."""
    path = directory / "records.jsonl"
    if not path.is_file():
        raise ReportError(f"{path}: no such file (run `infill trace replay ... --report {directory}`)")
    header, requests, end = {}, [], None
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                if number > 1:  # the last line of a replay killed mid-write
                    continue
                raise ReportError(f"{path}:{number}: not JSON") from None
            kind = record.get("kind")
            if kind == "replay":
                header = record
            elif kind == "request":
                requests.append(record)
            elif kind == "end":
                end = record
    return header, requests, end


def percentiles(values: list[float]) -> dict:
    if not values:
        return {"n": 0}
    ordered = sorted(values)
    out = {"n": len(ordered)}
    for p in PERCENTILES:
        out[f"p{p}"] = round(ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)], 1)
    out["mean"] = round(sum(ordered) / len(ordered), 1)
    return out


def saved_characters(requests: list[dict]) -> int:
    """Characters covered by accepted suggestions, each counted once per document."""
    spans = defaultdict(list)
    for r in requests:
        if r.get("accepted") and r.get("charsSaved"):
            spans[r["uri"]].append((r["offset"], r["offset"] + r["charsSaved"]))
    total = 0
    for intervals in spans.values():
        end = -1
        for start, stop in sorted(intervals):
            if stop > end:
                total += stop - max(start, end)
                end = stop
    return total


def _share(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _order(key: str) -> tuple:
    engine, _, lines = key.partition("/")
    rank = lambda items, v: items.index(v) if v in items else len(items)  # noqa: E731
    return rank(ENGINE_ORDER, engine), rank(LINES_ORDER, lines) if lines else -1, key


def summarize(header: dict, requests: list[dict], end: dict | None) -> dict:
    outcomes = Counter(r["outcome"] for r in requests)
    answered = [r for r in requests if r["outcome"] == "answered"]
    # A type-through answer ("cache") is the rest of a suggestion already shown, accepted
    # exactly when that one was: counted apart, so a suggestion counts once.
    shown = [r for r in answered if r["chars"] > 0 and r["engine"] != "cache"]
    accepted = [r for r in shown if r["accepted"]]
    groups: dict[str, list[float]] = defaultdict(list)
    for r in answered:
        groups[r["engine"]].append(r["latencyMs"])
        groups[f"{r['engine']}/{r['lines']}"].append(r["latencyMs"])
    saved, typed = saved_characters(requests), header.get("typedChars") or 0
    documents = header.get("documents") or []
    return {
        "trace": header.get("trace"), "date": header.get("date"), "machine": header.get("machine"),
        "device": header.get("device"), "models": header.get("models"),
        "serverCommand": header.get("server"), "debounceMs": header.get("debounceMs"),
        "modes": sorted({d.get("mode") for d in documents if d.get("mode")}),
        "speedsMs": sorted({d.get("speedMs") for d in documents if d.get("speedMs")}),
        "keystrokes": header.get("keystrokes"), "typedChars": typed,
        "traceSeconds": round((header.get("traceMs") or 0) / 1000, 1),
        "complete": end is not None,
        "requests": {"requestEvents": (end or {}).get("requestEvents"), "sent": len(requests),
                     **{k: outcomes.get(k, 0) for k in
                        ("answered", "stale", "cancelled", "error", "unanswered")},
                     "superseded": sum(r["superseded"] for r in requests)},
        "cancelledShare": _share(sum(r["superseded"] for r in requests), len(requests)),
        "latencyMs": {"all": percentiles([r["latencyMs"] for r in answered]),
                      **{k: percentiles(groups[k]) for k in sorted(groups, key=_order)}},
        "shown": len(shown), "accepted": len(accepted),
        "typeThrough": sum(r["chars"] > 0 and r["engine"] == "cache" for r in answered),
        "acceptedShareOfShown": _share(len(accepted), len(shown)),
        "acceptedShareOfSent": _share(len(accepted), len(requests)),
        "charsSaved": saved, "charsSavedShare": _share(saved, typed),
        "serverCounts": (end or {}).get("serverRequests"),
        "lagMs": (end or {}).get("lagMs"),
    }


# --- output ----------------------------------------------------------------------------------

def plots(requests: list[dict], directory: Path) -> list[str]:
    """The PNG files written (none without matplotlib)."""
    try:
        import matplotlib
    except ImportError:
        return []
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    answered = [r for r in requests if r["outcome"] == "answered"]
    written = []
    by_engine = defaultdict(list)
    for r in answered:
        by_engine[r["engine"]].append(max(r["latencyMs"], 0.1))
    fig, ax = plt.subplots(figsize=(8, 4.5))
    if answered:
        low = min(min(v) for v in by_engine.values())
        high = max(max(v) for v in by_engine.values())
        bins = [low * (high / low) ** (i / 40) for i in range(41)] if high > low else 20
        for engine in sorted(by_engine, key=_order):
            ax.hist(by_engine[engine], bins=bins, alpha=0.6, label=f"{engine} ({len(by_engine[engine])})")
        ax.set_xscale("log")
        ax.legend()
    ax.set_xlabel("latency (ms, log scale): request sent -> answer received")
    ax.set_ylabel("answered requests")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title("Latency of the answers the editor shows")
    fig.tight_layout()
    fig.savefig(directory / "latency_hist.png", dpi=100)
    plt.close(fig)
    written.append("latency_hist.png")

    fig, ax = plt.subplots(figsize=(10, 4.5))
    styles = {"answered": "o", "stale": "x", "cancelled": "+", "error": "s"}
    for outcome, marker in styles.items():
        for engine in sorted({r["engine"] for r in requests}, key=_order):
            points = [(r["sentMs"] / 1000, max(r["latencyMs"], 0.1)) for r in requests
                      if r["outcome"] == outcome and r["engine"] == engine
                      and r["latencyMs"] is not None]
            if points:
                xs, ys = zip(*points)
                ax.scatter(xs, ys, marker=marker, s=14, alpha=0.7, label=f"{outcome}, {engine}")
    if requests:
        ax.set_yscale("log")
        ax.legend(fontsize=8, ncol=2)
    ax.set_xlabel("time since the replay started (s)")
    ax.set_ylabel("latency (ms, log scale)")
    ax.set_title("Latency over time (x/+: superseded by a newer keystroke)")
    fig.tight_layout()
    fig.savefig(directory / "latency_time.png", dpi=100)
    plt.close(fig)
    written.append("latency_time.png")
    return written


def _fmt(value, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _pct(value) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def facts(summary: dict) -> list[tuple[str, str]]:
    req = summary["requests"]
    return [
        ("trace", f"{summary['trace']} ({', '.join(summary['modes'])}; "
                  f"{'/'.join(_fmt(s, 0) for s in summary['speedsMs'])} ms per key; "
                  f"{summary['keystrokes']} keystrokes, {summary['traceSeconds']} s)"),
        ("server", f"{' '.join(summary['serverCommand'] or [])} on {summary['device']}, "
                   f"client debounce {_fmt(summary['debounceMs'], 0)} ms"),
        ("models", json.dumps(summary["models"])),
        ("machine, date", f"{summary['machine']}, {summary['date']}"),
        ("requests sent", f"{req['sent']} of {_fmt(req['requestEvents'])} request events "
                          f"(answered {req['answered']}, stale {req['stale']}, cancelled by the "
                          f"server {req['cancelled']}, errors {req['error']}, unanswered "
                          f"{req['unanswered']})"),
        ("cancelled (superseded before the answer)", _pct(summary["cancelledShare"])),
        ("accepted (of shown / of sent)", f"{_pct(summary['acceptedShareOfShown'])} of "
                                          f"{summary['shown']} shown / "
                                          f"{_pct(summary['acceptedShareOfSent'])} (and "
                                          f"{summary['typeThrough']} type-through rests)"),
        ("characters saved", f"{summary['charsSaved']} of {summary['typedChars']} typed "
                             f"({_pct(summary['charsSavedShare'])})"),
        ("replay complete", "yes" if summary["complete"] else "no (no end line)"),
    ]


def latency_rows(summary: dict) -> list[list[str]]:
    rows = []
    for group, s in summary["latencyMs"].items():
        rows.append([group, str(s["n"])] + [_fmt(s.get(f"p{p}")) for p in PERCENTILES])
    return rows


def to_html(summary: dict, images: list[str]) -> str:
    e = html.escape
    head = "".join(f"<th>{h}</th>" for h in ["answered", "n"] + [f"p{p} ms" for p in PERCENTILES])
    rows = "".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>"
                   for row in latency_rows(summary))
    fact_rows = "".join(f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in facts(summary))
    pictures = "".join(f'<p><img src="{e(name)}" alt="{e(name)}"></p>' for name in images) or \
        "<p>No plots: matplotlib is not installed where this report was made.</p>"
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>infill trace replay: {e(str(summary['trace']))}</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:70em}} table{{border-collapse:collapse;margin:1em 0}}
td,th{{border:1px solid #ccc;padding:.25em .6em;text-align:left}} td{{font-variant-numeric:tabular-nums}}</style>
</head><body>
<h1>Editor-trace replay</h1>
<table>{fact_rows}</table>
<h2>Latency by engine and lines (answered requests)</h2>
<table><tr>{head}</tr>{rows}</table>
{pictures}
<p>summary.json has these figures; records.jsonl has one line per request.</p>
</body></html>
"""


def write_report(directory: Path, console=None) -> dict:
    """Summarize DIR/records.jsonl into DIR/summary.json, DIR/index.html and the plots; print."""
    from rich.console import Console
    from rich.table import Table

    header, requests, end = load(directory)
    summary = summarize(header, requests, end)
    images = plots(requests, directory)
    (directory / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    (directory / "index.html").write_text(to_html(summary, images), encoding="utf-8")
    console = console or Console(width=120)
    table = Table(title=f"trace replay: {directory}")
    for column in ["answered", "n"] + [f"p{p} ms" for p in PERCENTILES]:
        table.add_column(column, justify="left" if column == "answered" else "right")
    for row in latency_rows(summary):
        table.add_row(*row)
    console.print(table)
    for key, value in facts(summary):
        console.print(f"[bold]{key}[/bold]: {value}")
    if not images:
        console.print("no plots: matplotlib is not installed here (run `infill trace report DIR` "
                      "where it is)")
    console.print(f"wrote {directory / 'summary.json'}, {directory / 'index.html'}")
    return summary
