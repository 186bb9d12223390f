"""Dump-to-text throughput: our reader + stripper next to the `wikiextractor` package, same input, same run.

Usage:
    python bench/bench_corpus.py DUMP.xml.bz2 [--workers 1] [--repeat 3]

Only dump -> plain text is timed (no normalization, LID or dedupe). Both tools get the same number of
extraction processes (`--workers`); the best of `--repeat` runs is reported. Markup residue is the
share of output lines still containing `{{`, `[[`, `|` or `<ref` (`wiki.markup_residue`).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ulmfit_multi.corpus.wiki import DumpInfo, iter_articles, markup_residue, wikitext_to_text  # noqa: E402


def _strip(task: tuple[str, frozenset[str]]) -> str:
    return wikitext_to_text(*task)


def run_ours(dump: Path, workers: int) -> tuple[float, int, list[str]]:
    """(seconds, articles, output lines) for our reader + stripper."""
    start = time.perf_counter()
    info = DumpInfo()
    tasks = ((p.text, info.drop_ns) for p in iter_articles(dump, info=info, workers=workers))
    if workers > 1:
        with multiprocessing.Pool(workers) as pool:
            texts = list(pool.imap(_strip, tasks, chunksize=16))
    else:
        texts = [_strip(t) for t in tasks]
    seconds = time.perf_counter() - start
    return seconds, len(texts), [line for t in texts for line in t.split("\n") if line]


def run_wikiextractor(dump: Path, workers: int) -> tuple[float, int, list[str]]:
    """(seconds, articles, output lines) for `python -m wikiextractor.WikiExtractor --no-templates`."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "wikiextractor.WikiExtractor", str(dump), "-o", tmp, "--no-templates",
               "--processes", str(workers), "-q"]
        start = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        seconds = time.perf_counter() - start
        docs, lines, skip_title = 0, [], False
        for f in sorted(Path(tmp).rglob("wiki_*")):
            for line in f.read_text(encoding="utf-8").split("\n"):
                if line.startswith("<doc "):
                    docs, skip_title = docs + 1, True
                elif line == "</doc>" or not line.strip():
                    continue
                elif skip_title:
                    skip_title = False  # WikiExtractor repeats the title as the first line
                else:
                    lines.append(line)
    return seconds, docs, lines


def _measure(tool: str, dump: Path, workers: int) -> dict:
    """One run of one tool in this (fresh) process: timing, counts, residue, peak RSS."""
    seconds, n, lines = (run_ours if tool == "ours" else run_wikiextractor)(dump, workers)
    rss_kb = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss if tool == "ours" else 0,
                 resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
    return {"seconds": seconds, "articles": n, "lines": len(lines), "residue": markup_residue(lines),
            "rss_mb": rss_kb / 1024}


def main() -> None:
    """Run both extractors, each in a fresh process, and print the comparison."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("dump", type=Path)
    ap.add_argument("--workers", type=int, default=1, help="extraction processes for both tools")
    ap.add_argument("--repeat", type=int, default=3, help="runs per tool; the fastest counts")
    ap.add_argument("--tool", choices=["ours", "wikiextractor"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.tool:
        print(json.dumps(_measure(args.tool, args.dump, args.workers)))
        return
    mb = args.dump.stat().st_size / 1e6
    best: dict[str, dict] = {}
    for _ in range(args.repeat):  # interleaved so background load hits both alike
        for tool in ("ours", "wikiextractor"):
            out = subprocess.run([sys.executable, __file__, str(args.dump), "--workers", str(args.workers),
                                  "--tool", tool], check=True, capture_output=True, text=True).stdout
            result = json.loads(out.strip().splitlines()[-1])
            if tool not in best or result["seconds"] < best[tool]["seconds"]:
                best[tool] = result
    print(f"dump: {args.dump} ({mb:.2f} MB compressed), workers={args.workers}, best of {args.repeat}")
    print(f"{'tool':<14} {'seconds':>8} {'MB/s':>7} {'pages/s':>8} {'articles':>8} {'lines':>7} "
          f"{'residue':>8} {'peak RSS MB':>11}")
    for tool, r in best.items():
        print(f"{tool:<14} {r['seconds']:8.2f} {mb / r['seconds']:7.2f} {r['articles'] / r['seconds']:8.0f} "
              f"{r['articles']:8d} {r['lines']:7d} {r['residue']:8.4f} {r['rss_mb']:11.0f}")
    print(f"throughput ratio (ours / wikiextractor): {best['wikiextractor']['seconds'] / best['ours']['seconds']:.2f}x")
    print("peak RSS: largest single process of the tool (ours includes the kept output lines)")


if __name__ == "__main__":
    main()
