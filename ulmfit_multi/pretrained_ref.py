"""A recipe's reference to a pretrained-LM bundle: `pretrain.from = { path = ..., url = ..., sha256 = ... }`.

The type and its checks live here (config.py imports them); what the stages do with a bundle is in
pretrained.py, how the bundle is found before they run in resolve.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .errors import RecipeError


@dataclass
class PretrainedLM:
    """A pretrained-LM bundle to start from (`ulmfit-multi export RUN --lm`): with one, the corpus, tokenizer and
    pretraining stages take the bundle's tokenizer and weights instead of building their own (pretrained.py)."""

    path: str = ""  # a bundle folder or .zip: absolute, or relative to the recipe file's folder
    url: str = ""  # downloaded into the data root (lm-bundles/<file name>) when `path` is not given or not there
    sha256: str = ""  # of the .zip (of a bundle folder: of its CHECKSUMS.sha256); checked when given

    @property
    def given(self) -> bool:
        """Whether the recipe names a bundle."""
        return bool(self.path or self.url)


def path_near(recipe: Path, rel: str) -> str:
    """`rel` made absolute: relative to the recipe file's folder, else (no such file there) to the current one."""
    p = Path(rel).expanduser()
    if p.is_absolute():
        return str(p)
    beside = Path(recipe).parent / p
    return str((beside if beside.exists() or not p.exists() else p).resolve())


def check_pretrained(f: PretrainedLM, path: str | Path) -> None:
    """`pretrain.from`: a path or a URL (or neither: no bundle), a sha256 that is one; a RecipeError otherwise."""
    if f.sha256 and not f.given:
        raise RecipeError(f"{path}: 'pretrain.from' needs a path or a url (an LM bundle: ulmfit-multi export RUN --lm)")
    if f.url and not f.url.startswith(("https://", "http://", "file://")):
        raise RecipeError(f"{path}: 'pretrain.from.url' is {f.url!r}; expected an http(s):// or file:// URL")
    if f.sha256 and (len(f.sha256) != 64 or any(c not in "0123456789abcdef" for c in f.sha256)):
        raise RecipeError(f"{path}: 'pretrain.from.sha256' is {f.sha256!r}; expected 64 lowercase hex digits")
    if f.path and not f.url and not Path(f.path).exists():
        raise RecipeError(f"{path}: 'pretrain.from.path' {f.path} does not exist (and no url is given)")
