"""Training precision: which `model.precision` a stage runs at, and the autocast context for it.

`model.precision` (a recipe key, so the training stages' fingerprints see it) is one of:
  * "cuda-bf16" (the default, the behaviour before the key existed): bf16 autocast on CUDA, fp32 elsewhere;
  * "auto": bf16 on CUDA and on CPUs with native bf16 (the `avx512_bf16` or `amx_bf16` flag in /proc/cpuinfo),
    fp32 elsewhere;
  * "fp32": no autocast anywhere;
  * "bf16": bf16 autocast on any device (on a CPU without native bf16 it is emulated, and slow).

`resolve_precision` turns it into "fp32" or "bf16" once per stage, for the device the stage runs on; the
trainers record the resolved value in their summaries and history. Under bf16 autocast the parameters,
gradients and optimizer state stay fp32 (autocast casts copies for the ops on its list), the loss, softmax
and AR/TAR are computed on fp32 casts of the logits and activations, and the LSTM state carried from one batch
to the next is kept in fp32 (`model.AWDLSTM`). What runs in bf16 then: on CPU the linear layers (decoder,
classifier head) and the fused LSTM kernel (oneDNN's `mkldnn_rnn_layer`, forward and backward); on CUDA the
linear layers only (the LSTM is kept in fp32 there: CUDA autocast would run it in fp16). The embedding lookup,
dropouts on fp32 inputs, BatchNorm on fp32 inputs, the loss and the optimizer stay fp32.
"""

from __future__ import annotations

import contextlib
import functools
from pathlib import Path

PRECISIONS = ("cuda-bf16", "auto", "fp32", "bf16")  # model.precision values; the first is the default
RESOLVED = ("fp32", "bf16")
_NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")  # x86 CPU flags of hardware bf16 dot products


def cpu_flags(cpuinfo: str | Path = "/proc/cpuinfo") -> set[str]:
    """The CPU feature flags Linux reports (the first `flags` line of /proc/cpuinfo); empty elsewhere."""
    try:
        text = Path(cpuinfo).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            return set(value.split())
    return set()


@functools.lru_cache(maxsize=1)
def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 dot products in hardware (`avx512_bf16` or `amx_bf16`).

    Read from the flags the kernel reports, not guessed from torch's vector capability ("AVX512" says nothing
    about bf16): a machine that does not report the flags (not Linux, not x86) counts as without."""
    return bool(cpu_flags() & set(_NATIVE_BF16_FLAGS))


def resolve_precision(precision: str, device: str) -> str:
    """"fp32" or "bf16": what `precision` (a `model.precision` value, or an already resolved one) means on
    `device` ("cpu", "cuda", "cuda:1", ...)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r}; expected one of {', '.join(PRECISIONS)}")
    cuda = device.startswith("cuda")
    if precision == "cuda-bf16":
        return "bf16" if cuda else "fp32"
    if precision == "auto":
        return "bf16" if cuda or (device.split(":")[0] == "cpu" and cpu_has_native_bf16()) else "fp32"
    return precision


def autocast(device: str, precision: str) -> contextlib.AbstractContextManager:
    """bf16 autocast on `device`'s type (CUDA or CPU) when `precision` resolves to "bf16" there; else a no-op."""
    import torch

    if resolve_precision(precision, device) != "bf16":
        return contextlib.nullcontext()
    kind = "cuda" if device.startswith("cuda") else device.split(":")[0]
    if kind not in ("cuda", "cpu"):
        return contextlib.nullcontext()
    return torch.autocast(kind, dtype=torch.bfloat16)
