"""Data-parallel LM training: `train_lm` under torch.distributed (gloo, 2 processes) against one process.

The ranks are plain subprocesses (no Ray), so this runs in the default suite; the Ray Train path through
the pretrain stage is in tests/test_distributed.py (-m slow).
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import torch

from ulmfit_multi.config import LMSection, ModelSection
from ulmfit_multi.model import build_language_model
from ulmfit_multi.tokens import LMStream
from ulmfit_multi.train import train_lm

ROOT = Path(__file__).resolve().parents[1]

# one rank: python rank.py RANK WORLD PORT OUT [STOP_AT]
RANK_SCRIPT = textwrap.dedent('''
    import os, sys
    import numpy as np, torch, torch.distributed as dist
    sys.path.insert(0, {root!r})
    from ulmfit_multi.config import LMSection, ModelSection
    from ulmfit_multi.model import build_language_model
    from ulmfit_multi.tokens import LMStream
    from ulmfit_multi.train import train_lm

    rank, world, port, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
    stop_at = int(sys.argv[5]) if len(sys.argv) > 5 else 0
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=port)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = build_language_model(ModelSection(**{model!r}), {vocab})
    tokens = np.load({tokens!r})
    stream = LMStream(tokens, 8, 10, seed=0, rank=rank, world_size=world)

    def hook(info):
        if stop_at and info["step"] == stop_at:
            raise SystemExit(3)

    def epoch_done(rec):
        with open(os.path.join(out, f"epochs_rank{{rank}}.txt"), "a") as f:
            f.write(f"{{rec['epoch']}}/{{rec['epochs_total']}}\\n")

    code = 0
    try:
        train_lm(model, stream, None, LMSection(**{train!r}), out, progress=False, precision="fp32", on_step=hook,
                 on_epoch=epoch_done)
    except SystemExit as stop:  # both ranks stop at the same step
        code = stop.code
    dist.barrier()  # both ranks tear gloo down together, stopped or not (a rank leaving early aborted the other)
    dist.destroy_process_group()
    sys.exit(code)
''')

VOCAB = 40
MODEL = dict(emb_size=16, hidden_size=24, n_layers=2, drop_mult=0.0)  # no dropout: exact match
TRAIN = dict(epochs=2, lr=1e-2, checkpoint_minutes=0.0)


def _free_port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return str(s.getsockname()[1])


def _tokens(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    path = tmp_path / "tokens.npy"
    np.save(path, np.tile(rng.integers(1, 40, size=37), 60).astype(np.int64))  # learnable: a repeated phrase
    return path


def _run_ranks(tmp_path: Path, out: Path, world: int, stop_at: int = 0) -> list[int]:
    script = tmp_path / "rank.py"
    script.write_text(RANK_SCRIPT.format(root=str(ROOT), model=MODEL, vocab=VOCAB, tokens=str(_tokens(tmp_path)),
                                         train=TRAIN))
    port = _free_port()
    procs = [subprocess.Popen([sys.executable, str(script), str(r), str(world), port, str(out)]
                              + ([str(stop_at)] if stop_at else []), stderr=subprocess.PIPE, text=True)
             for r in range(world)]
    codes = []
    for p in procs:
        _, err = p.communicate(timeout=240)
        if p.returncode not in (0, 3):
            raise AssertionError(f"rank exited with {p.returncode}:\n{err[-3000:]}")
        codes.append(p.returncode)
    return codes


def _step_losses(out: Path) -> np.ndarray:
    rows = [json.loads(line) for line in (out / "history.jsonl").read_text().splitlines()]
    return np.array([r["train_loss"] for r in rows if r["kind"] == "step"])


def test_two_ranks_match_one_process(tmp_path):
    tokens = np.load(_tokens(tmp_path))
    torch.manual_seed(0)
    one = tmp_path / "one"
    train_lm(build_language_model(ModelSection(**MODEL), VOCAB), LMStream(tokens, 8, 10, seed=0), None,
             LMSection(**TRAIN), one, progress=False, precision="fp32")
    two = tmp_path / "two"
    _run_ranks(tmp_path, two, world=2)
    a, b = _step_losses(one), _step_losses(two)
    assert len(a) == len(b) > 10 and a[-1] < a[0] - 0.5  # it learns
    np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-5)
    ck = torch.load(two / "ckpt" / "last.pt", weights_only=False)
    assert ck["world_size"] == 2 and len(ck["hidden"]) == 2 and len(ck["rng"]) == 2  # per-rank state
    assert (two / "model.pt").exists()
    assert (two / "epochs_rank0.txt").read_text().split() == ["0/2", "1/2"]  # on_epoch: rank 0 only
    assert not (two / "epochs_rank1.txt").exists()


def test_two_ranks_resume_equals_uninterrupted(tmp_path):
    full, cut = tmp_path / "full", tmp_path / "cut"
    _run_ranks(tmp_path, full, world=2)
    assert _run_ranks(tmp_path, cut, world=2, stop_at=7) == [3, 3]  # both ranks stop after step 7's checkpoint
    assert not (cut / "model.pt").exists()
    _run_ranks(tmp_path, cut, world=2)
    np.testing.assert_allclose(_step_losses(cut), _step_losses(full), rtol=1e-5, atol=1e-6)
