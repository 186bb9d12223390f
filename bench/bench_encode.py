"""Corpus encoding throughput: `encode_corpus` (SentencePiece threads) next to the same model driven naively.

Usage:
    python bench/bench_encode.py [TEXT_FILE_OR_DIR ...] [--tokenizer DIR] [--vocab-size 8000] [--max-mb 20]

Inputs (default: the Marathi wikisource and Malayalam SMC wiki mirrors) are concatenated into one temporary
corpus capped at `--max-mb` (cut at a line boundary). Without `--tokenizer`, a SentencePiece model
(`--vocab-size`) is trained on it first (not timed in the comparison). Then, in the same run:
  - encode_corpus with workers = all cores: MB/s, tokens/s;
  - naive: one `encode` call per line, one process: MB/s, tokens/s; and the speed ratio;
  - vocab size, tokens per word, unknown rate;
  - peak RSS growth while iterating one LMStream epoch over the token file and over a 10x tiled copy
    (an .npy memmap on disk): anonymous memory must stay flat (file-backed pages are page cache).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from ulmfit_multi.tokenizer import NpyAppender, Tokenizer, encode_corpus, train_tokenizer  # noqa: E402

MIRROR = Path(os.environ.get("ULMFIT_MULTI_MIRROR") or Path(__file__).resolve().parents[2] / "shared" / "data")
DEFAULT_INPUTS = [str(MIRROR / "mr" / "text" / "wikisource"), str(MIRROR / "ml" / "text" / "smc")]


def text_files(paths: list[str]) -> list[Path]:
    """Files given, and every non-README file under folders given (sorted)."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out += sorted(f for f in p.rglob("*") if f.is_file() and not f.name.lower().startswith("readme")
                           and not f.name.endswith("~"))
        else:
            out.append(p)
    return out


def build_corpus(files: list[Path], dest: Path, max_bytes: int) -> int:
    """Concatenate files (blank line between) into dest, stopping at a line boundary before max_bytes."""
    size = 0
    with open(dest, "w", encoding="utf-8") as out:
        for path in files:
            with open(path, encoding="utf-8", errors="replace") as f:
                for line in f:
                    if line.startswith("<doc ") or line.strip() == "</doc>":
                        line = "\n"  # WikiExtractor article markup: a document boundary, not text
                    n = len(line.encode("utf-8"))
                    if size + n > max_bytes:
                        return size
                    out.write(line)
                    size += n
            out.write("\n\n")
            size += 2
    return size


def cpu_seconds() -> float:
    """User + system CPU time of this process and its finished children."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def rss_kb() -> tuple[int, int]:
    """(RssAnon, VmRSS) of this process in kB."""
    fields = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("RssAnon", "VmRSS"):
                fields[key] = int(value.split()[0])
    return fields["RssAnon"], fields["VmRSS"]


def lm_peak_growth(tokens: np.ndarray, batch_size: int, bptt: int) -> tuple[float, float, int, float]:
    """(peak RssAnon growth MB, peak VmRSS growth MB, batches, seconds) over one LMStream epoch."""
    from ulmfit_multi.tokens import LMStream  # imports torch: only when needed

    stream = LMStream(tokens, batch_size, bptt, seed=0)
    anon0, rss0 = rss_kb()
    peak_anon = peak_rss = 0
    t0 = time.perf_counter()
    n = 0
    for n, (x, y) in enumerate(stream.batches(0), 1):
        if n % 200 == 0:
            anon, rss = rss_kb()
            peak_anon, peak_rss = max(peak_anon, anon - anon0), max(peak_rss, rss - rss0)
    anon, rss = rss_kb()
    peak_anon, peak_rss = max(peak_anon, anon - anon0), max(peak_rss, rss - rss0)
    return peak_anon / 1024, peak_rss / 1024, n, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("inputs", nargs="*", default=DEFAULT_INPUTS, help="text files or folders")
    ap.add_argument("--tokenizer", type=Path, help="trained tokenizer folder (default: train one)")
    ap.add_argument("--vocab-size", type=int, default=8_000)
    ap.add_argument("--train-sentences", type=int, default=100_000, help="tokenizer training sample cap")
    ap.add_argument("--max-mb", type=float, default=20.0, help="cap on the input text, MB")
    ap.add_argument("--workers", type=int, default=0, help="encode_corpus threads (0: all cores)")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--bptt", type=int, default=70)
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench_encode_") as tmp:
        tmp = Path(tmp)
        files = text_files(args.inputs)
        corpus = tmp / "corpus.txt"
        n_bytes = build_corpus(files, corpus, int(args.max_mb * 1e6))
        print(f"input: {len(files)} files -> {n_bytes / 1e6:.1f} MB ({', '.join(args.inputs)})")

        tok_dir = args.tokenizer
        if tok_dir is None:
            tok_dir = tmp / "tok"
            t0 = time.perf_counter()
            train_tokenizer([corpus], tok_dir, vocab_size=args.vocab_size, max_sentences=args.train_sentences,
                            hard_vocab_limit=False)
            print(f"trained tokenizer: vocab {args.vocab_size} on <= {args.train_sentences:,} sentences "
                  f"in {time.perf_counter() - t0:.1f}s")
        tok = Tokenizer.load(tok_dir)

        workers = args.workers or os.cpu_count() or 1
        load = os.getloadavg()[0]
        c0 = cpu_seconds()
        meta = encode_corpus(tok_dir, [corpus], tmp / "enc", workers=workers, progress=False)
        fast_s, fast_cpu = meta["seconds"], cpu_seconds() - c0

        c0, t0 = cpu_seconds(), time.perf_counter()
        naive_tokens = 0
        with open(corpus, encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    naive_tokens += len(tok.sp.encode(line.rstrip("\r\n"), out_type=int)) + 1  # + EOS
        naive_s, naive_cpu = time.perf_counter() - t0, cpu_seconds() - c0
        assert naive_tokens == meta["tokens"], (naive_tokens, meta["tokens"])

        mb = meta["text_bytes"] / 1e6
        print(f"vocab size {tok.vocab_size}, tokens/word {meta['tokens_per_word']}, "
              f"unk rate {meta['unk_rate']:.5f}, tokens {meta['tokens']:,}, docs {meta['documents']:,}")
        print(f"encode_corpus (threads={workers}): {mb / fast_s:7.2f} MB/s {meta['tokens'] / fast_s:12,.0f} tok/s"
              f"  ({fast_s:.2f}s)")
        print(f"naive (1 encode/line, 1 proc):  {mb / naive_s:7.2f} MB/s {naive_tokens / naive_s:12,.0f} tok/s"
              f"  ({naive_s:.2f}s)")
        print(f"speedup: {naive_s / fast_s:.2f}x on {os.cpu_count()} cores (load average {load:.1f} at start)")
        # on a busy machine wall time shows the CPU share we got, not the code: compare CPU seconds too
        print(f"CPU seconds: encode_corpus {fast_cpu:.2f} (all threads), naive {naive_cpu:.2f}; "
              f"CPU used per wall second: {fast_cpu / fast_s:.2f} vs {naive_cpu / naive_s:.2f}")

        # LMStream memory: the token file vs a 10x tiled copy on disk
        from ulmfit_multi.tokens import TokenStore

        store = TokenStore.open(tmp / "enc")
        big = tmp / "tokens10x.npy"
        with open(big, "wb") as f:
            app = NpyAppender(f, store.tokens.dtype)
            for _ in range(10):
                app.append(np.asarray(store.tokens))
            app.close()
        for name, path in (("1x", tmp / "enc" / "tokens.npy"), ("10x", big)):
            tokens = np.load(path, mmap_mode="r")
            anon, rss, n, s = lm_peak_growth(tokens, args.batch_size, args.bptt)
            print(f"LMStream epoch {name:>3}: {len(tokens):>12,} tokens, {n:,} batches in {s:.1f}s; "
                  f"peak growth RssAnon {anon:6.1f} MB, VmRSS {rss:6.1f} MB (file {path.stat().st_size / 1e6:.0f} MB)")
            del tokens


if __name__ == "__main__":
    main()
