"""The benchmark report: one table of every figure (its target, the floor or peer measured
in the same run, the ratio, the verdict) and plots, written to benchmarks/REPORT.md and
benchmarks/plots/*.png. Benchmarks add rows with ``row`` and plot data with ``record``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

Row = tuple[str, str, str, str, str, str]  # benchmark, newsdrop, target, peer, ratio, verdict
SERIES: dict[str, Any] = {}  # plot data, filled by the benchmarks as they run

HERE = Path(__file__).resolve().parent
CHAOS_BEGIN, CHAOS_END = "<!-- chaos:begin -->", "<!-- chaos:end -->"
PLOTS = HERE / "plots"


def row(benchmark: str, value: str, target: str, peer: str, ratio: str, met: bool) -> Row:
    return (benchmark, value, target, peer, ratio, "met" if met else "NOT met")


def record(name: str, data: Any) -> None:
    SERIES[name] = data


def table(rows: list[Row]) -> list[str]:
    return [
        "| benchmark | newsdrop | target | floor or peer, same run | ratio | verdict |",
        "| --- | --- | --- | --- | --- | --- |",
        *(f"| {' | '.join(r)} |" for r in rows),
    ]


def plots() -> list[str]:
    """Draw what SERIES holds; the Markdown lines that show the pictures."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    PLOTS.mkdir(exist_ok=True)
    lines: list[str] = []

    def save(fig: Any, name: str, caption: str) -> None:
        fig.tight_layout()
        fig.savefig(PLOTS / name, dpi=110)
        plt.close(fig)
        lines.extend([f"### {caption}", "", f"![{caption}](plots/{name})", ""])

    if "publish_latency_s" in SERIES:
        fig, ax = plt.subplots(figsize=(7, 3.5))
        values = sorted(v * 1000 for v in SERIES["publish_latency_s"])
        ax.plot(
            values, [i / len(values) for i in range(1, len(values) + 1)], drawstyle="steps-post"
        )
        ax.axvline(1000, color="red", linestyle="--", label="target p95 <= 1 s")
        ax.set_xlabel("rename into seeds/ -> served in atom.xml (ms)")
        ax.set_ylabel("fraction of documents")
        ax.legend()
        save(fig, "publish-latency.png", "Watch-to-publish latency (CDF)")
    if "web_latency_idle_s" in SERIES and "web_latency_busy_s" in SERIES:
        fig, ax = plt.subplots(figsize=(7, 3.5))
        for key, label in (
            ("web_latency_idle_s", "idle"),
            ("web_latency_busy_s", "during a 10,000-file ingest"),
        ):
            values = sorted(v * 1000 for v in SERIES[key])
            if values:
                ax.plot(values, [i / len(values) for i in range(1, len(values) + 1)], label=label)
        ax.set_xscale("log")
        ax.set_xlabel("GET /atom.xml latency (ms, log scale)")
        ax.set_ylabel("fraction of requests")
        ax.legend()
        save(fig, "web-latency.png", "Web latency, idle and under an ingest (CDF)")
    if "send_rate_by_pool" in SERIES:
        fig, ax = plt.subplots(figsize=(7, 3.5))
        for label, points in SERIES["send_rate_by_pool"].items():
            pools = sorted(points)
            ax.plot(pools, [points[p] for p in pools], marker="o", label=label)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("[mail] pool_size (connections)")
        ax.set_ylabel("digests per second")
        ax.legend()
        save(fig, "send-rate-by-pool.png", "Digest throughput against pool size")
    if "build_by_size" in SERIES:
        fig, ax1 = plt.subplots(figsize=(7, 3.5))
        sizes = sorted(SERIES["build_by_size"])
        ax1.plot(
            sizes,
            [SERIES["build_by_size"][s][0] for s in sizes],
            marker="o",
            label="incremental (ms)",
        )
        ax1.set_xscale("log")
        ax1.set_xlabel("entries in the archive")
        ax1.set_ylabel("incremental build, 1 new entry (ms)")
        ax2 = ax1.twinx()
        ax2.plot(
            sizes,
            [SERIES["build_by_size"][s][1] for s in sizes],
            marker="s",
            color="tab:orange",
            label="full (s)",
        )
        ax2.set_ylabel("full rebuild (s)")
        fig.legend(loc="upper left", bbox_to_anchor=(0.1, 0.9))
        save(fig, "build-by-size.png", "Build time against archive size")
    return lines


def chaos_runs() -> list[str]:
    """The chaos runs recorded by tools/chaos.py (`make chaos`), newest last."""
    import json

    path = HERE / "chaos-runs.json"
    if not path.exists():
        return []
    keys = [
        "good documents", "entries served", "bad documents", "feed reads",
        "feed reads that did not parse", "kills (SIGKILL)", "periods missed",
        "messages received", "duplicates (in flight at a kill)", "seed files changed by newsdrop",
        "store integrity",
    ]  # fmt: skip
    lines = [
        CHAOS_BEGIN,
        "## Chaos runs (`make chaos`)",
        "",
        "| when | minutes | seed | verdict | " + " | ".join(keys) + " |",
        "| --- | --- | --- | --- | " + " | ".join("---" for _ in keys) + " |",
    ]
    for run in json.loads(path.read_text(encoding="utf-8")):
        figures = run["figures"]
        verdict = "passed" if run["passed"] else "FAILED: " + "; ".join(run["violations"][:2])
        cells = [str(figures.get(key, "")) for key in keys]
        lines.append(
            f"| {run['when']} | {run['minutes']:g} | {run['seed']} | {verdict} | "
            + " | ".join(cells)
            + " |"
        )
    return [*lines, ""]


def write(rows: list[Row], *, machine: str, when: str) -> None:
    text = [
        "# Benchmark report",
        "",
        f"Measured {when} on {machine}, by `make bench` (benchmarks/run.py). Every figure has",
        "its floor or peer measured in the same run on the same machine; the ratio compares",
        "them. What each benchmark does is described in [README.md](README.md).",
        "",
        *table(rows),
        "",
        "## Plots",
        "",
        *plots(),
        *chaos_runs(),
    ]
    (HERE / "REPORT.md").write_text("\n".join(text), encoding="utf-8")
