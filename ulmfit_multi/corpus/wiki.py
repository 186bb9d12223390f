"""Stream a MediaWiki XML export (.bz2/.xz/.gz/plain) and turn wikitext into plain text.

Usage:
    info = DumpInfo()
    for page in iter_articles(path, stats=stats, info=info):
        text = wikitext_to_text(page.text, info.drop_ns)

The reader feeds an expat pull parser in 1 MiB chunks and clears every finished page,
so memory stays flat whatever the dump size. Namespace names come from the dump's own
`<siteinfo>`, so localized links such as `[[वर्ग:...]]` and `[[चित्र:...]]` are recognized.

Design choices of `wikitext_to_text`:
- headings (`== ... ==`) are dropped: they are short labels ("संदर्भ", "बाह्य दुवे"), not prose;
- list items keep their text without the `*#:;` markers;
- templates, tables, references, comments, galleries and math are removed with their content;
- file, media and category links and interwiki links are removed; other links keep their text;
- each remaining non-empty source line is one paragraph of the output.
"""

from __future__ import annotations

import codecs
import html
import lzma
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

from ..errors import DataError
from .sources import iter_chunks

_EXPORT_NS = "http://www.mediawiki.org/xml/export-"
_CHUNK_BYTES = 1 << 20
# canonical English names work in every wiki, next to the localized ones from <siteinfo>
_DROP_NS_KEYS = {-2: "media", 6: "file", 14: "category"}
_DROP_NS_ALIASES = {"image"}
_REDIRECT_RE = re.compile(r"\s*#\s*(?:redirect|पुनर्निर्देशन)", re.I)
_DISAMBIG_RE = re.compile(r"\{\{\s*[^{}|\n]*(?:disambig|संदिग्धीकरण|बहुविकल्पी)[^{}|\n]*(?:\||\}\})|__DISAMBIG__", re.I)


@dataclass(frozen=True)
class Page:
    """One `<page>` of the dump; `text` is the raw wikitext of its last revision."""

    id: str
    title: str
    ns: int
    text: str
    redirect: bool


@dataclass
class DumpInfo:
    """What the reader learned from `<siteinfo>`."""

    namespaces: dict[int, str] = field(default_factory=dict)
    drop_ns: frozenset[str] = frozenset()


def _drop_ns_names(namespaces: dict[int, str]) -> frozenset[str]:
    names = set(_DROP_NS_KEYS.values()) | _DROP_NS_ALIASES
    names |= {namespaces[k].casefold() for k in _DROP_NS_KEYS if namespaces.get(k)}
    return frozenset(names)


KEEP_HINT = "; to use the pages before the cut, set corpus.keep_truncated = true in the recipe (or --set)"


def iter_pages(path: Path, *, keep_truncated: bool = False, stats: dict | None = None,
               info: DumpInfo | None = None, workers: int = 1) -> Iterator[Page]:
    """Every page of the dump in order, streamed; `workers` > 1 decompresses multistream bz2 in parallel.

    Raises:
        DataError: empty file, not a MediaWiki export, corrupt/truncated compression, invalid
            UTF-8 or malformed XML; the message names the file, the compressed byte offset and
            the last complete page. With `keep_truncated`, a truncated dump ends the iteration
            instead and sets `stats["truncated"] = True`.
    """
    path = Path(path)
    stats = stats if stats is not None else {}
    info = info if info is not None else DumpInfo()
    stats.setdefault("truncated", False)
    if path.stat().st_size == 0:
        raise DataError(f"{path}: empty file (0 bytes), not a MediaWiki export")
    parser = ET.XMLPullParser(events=("start", "end"))
    tail = b""  # the previous chunk's last bytes: a UTF-8 sequence may straddle two chunks
    state = _ParseState()
    decompressed = 0
    offset = 0

    def where() -> str:
        last = f"after page {state.last_title!r} (id {state.last_id})" if state.last_id else "before the first page"
        return f"at compressed byte {offset}, {last}"

    chunks = iter_chunks(path, _CHUNK_BYTES, workers)
    try:
        while True:
            try:
                chunk, offset = next(chunks)
            except EOFError as e:
                offset = getattr(e, "compressed_pos", offset)
                if keep_truncated and state.pages:
                    stats["truncated"] = True
                    return
                raise DataError(f"{path}: truncated compressed stream {where()}: {e}{KEEP_HINT}") from e
            except (OSError, lzma.LZMAError) as e:
                offset = getattr(e, "compressed_pos", offset)
                raise DataError(f"{path}: corrupt compressed data {where()}: {e}") from e
            start = decompressed - len(tail)  # decompressed offset of tail + chunk
            decompressed += len(chunk)
            try:
                if chunk:
                    parser.feed(chunk)
                else:
                    parser.close()
                yield from state.handle(parser.read_events(), path, info)
            except ET.ParseError as e:
                line, col = e.position
                if e.code in (4, 6):  # invalid token / partial char: say so precisely if it is bad UTF-8
                    _check_utf8(tail + chunk, start, path, where)
                if not chunk and state.started and e.code in (3, 5, 6):  # no elements / unclosed token / partial char
                    if keep_truncated and state.pages:
                        stats["truncated"] = True
                        return
                    raise DataError(f"{path}: truncated XML (ends inside an element, line {line}) {where()}"
                                    f"{KEEP_HINT}") from e
                if not state.started:
                    raise DataError(f"{path}: empty or not XML (line {line}, column {col}), "
                                    f"not a MediaWiki export") from e
                raise DataError(f"{path}: malformed XML at line {line}, column {col} {where()}: {e}") from e
            if not chunk:
                break
            tail = chunk[-3:]
    finally:
        chunks.close()
    if not state.pages:
        raise DataError(f"{path}: MediaWiki export contains no pages")


def _check_utf8(data: bytes, start: int, path: Path, where) -> None:
    """Raise DataError naming the decompressed byte offset if `data` holds invalid UTF-8."""
    skip = 0
    while skip < len(data) and skip < 3 and 0x80 <= data[skip] < 0xC0:
        skip += 1  # continuation bytes of a character that began before `data`
    try:
        codecs.getincrementaldecoder("utf-8")().decode(data[skip:], final=False)
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: invalid UTF-8 at decompressed byte {start + skip + e.start} {where()}") from e


class _ParseState:
    """Turns pull-parser events into Pages, clearing finished elements."""

    def __init__(self) -> None:
        self.started = False
        self.root: ET.Element | None = None
        self.ns = ""
        self.pages = 0
        self.last_title = ""
        self.last_id = ""

    def handle(self, events: Iterable[tuple[str, ET.Element]], path: Path, info: DumpInfo) -> Iterator[Page]:
        """Yield the pages completed by these events."""
        for event, elem in events:
            if event == "start":
                if not self.started:
                    self.started = True
                    tag = elem.tag
                    if not (tag.startswith("{" + _EXPORT_NS) and tag.endswith("}mediawiki")):
                        raise DataError(f"{path}: root element is <{tag}>, not a MediaWiki export <mediawiki>")
                    self.root = elem
                    self.ns = tag[: tag.index("}") + 1]
                continue
            tag = elem.tag[len(self.ns):]
            if tag == "page":
                yield self._page(elem)
                self.root.clear()  # type: ignore[union-attr]
            elif tag == "namespace":
                info.namespaces[int(elem.get("key", "0"))] = (elem.text or "").strip()
            elif tag == "siteinfo":
                info.drop_ns = _drop_ns_names(info.namespaces)
                self.root.clear()  # type: ignore[union-attr]

    def _page(self, elem: ET.Element) -> Page:
        ns = self.ns
        title = elem.findtext(f"{ns}title") or ""
        page_id = elem.findtext(f"{ns}id") or ""
        text = elem.findtext(f"{ns}revision/{ns}text") or ""
        ns_key = int(elem.findtext(f"{ns}ns") or "0")
        self.pages += 1
        self.last_title, self.last_id = title, page_id
        return Page(page_id, title, ns_key, text, elem.find(f"{ns}redirect") is not None)


def is_redirect(page: Page) -> bool:
    """True for `<redirect>` pages and `#REDIRECT` / `#पुनर्निर्देशन` wikitext."""
    return page.redirect or bool(_REDIRECT_RE.match(page.text))


def is_disambiguation(wikitext: str) -> bool:
    """True if a template name contains 'disambig' or a localized name (निःसंदिग्धीकरण, बहुविकल्पी)."""
    return bool(_DISAMBIG_RE.search(wikitext))


def iter_articles(path: Path, *, keep_truncated: bool = False, stats: dict | None = None,
                  info: DumpInfo | None = None, workers: int = 1) -> Iterator[Page]:
    """Main-namespace pages that are neither redirects nor disambiguation pages; counts the others in `stats`."""
    stats = stats if stats is not None else {}
    for key in ("pages", "non_main_namespace", "redirects", "disambiguation"):
        stats.setdefault(key, 0)
    for page in iter_pages(path, keep_truncated=keep_truncated, stats=stats, info=info, workers=workers):
        stats["pages"] += 1
        if page.ns != 0:
            stats["non_main_namespace"] += 1
        elif is_redirect(page):
            stats["redirects"] += 1
        elif is_disambiguation(page.text):
            stats["disambiguation"] += 1
        else:
            yield page


# ---------------------------------------------------------------- wikitext -> text

_COMMENT_RE = re.compile(r"<!--.*?(?:-->|$)", re.S)
_DROP_TAGS = "ref|references|math|gallery|timeline|score|syntaxhighlight|source|imagemap|templatedata|" \
             "templatestyles|graph|mapframe|maplink|chem|ce|hiero|inputbox|categorytree|section|indicator"
_SELF_CLOSING_RE = re.compile(rf"<(?:{_DROP_TAGS})\b[^<>]*/\s*>", re.I)
_PAIRED_RE = re.compile(rf"<({_DROP_TAGS})\b[^<>]*>.*?</\1\s*>", re.I | re.S)
_TEMPLATE_TOKEN_RE = re.compile(r"\{\{|\}\}")
_TABLE_TOKEN_RE = re.compile(r"^[ \t]*(?:\{\||\|\})", re.M)
_LINK_RE = re.compile(r"\[\[([^\[\]]*)\]\]")
_EXTLINK_RE = re.compile(r"\[(?:https?:|ftp:|mailto:|//)[^\s\]]*[ \t]*([^\]\n]*)\]", re.I)
_QUOTES_RE = re.compile(r"'{2,}")
_BR_RE = re.compile(r"<br\s*/?\s*>", re.I)
_TAG_RE = re.compile(r"</?[A-Za-z][^<>]*>")
_MAGIC_RE = re.compile(r"__[A-Z]+__")
_LIST_RE = re.compile(r"^[*#:;]+\s*")
_SPACE_RE = re.compile(r"[ \t\u00a0\u2009\u202f]+")
_INTERWIKI_RE = re.compile(r"^(?:[a-z]{2,3}(?:-[a-z0-9]{2,8})*|d|m|q|s|b|n|v|w|wikt|commons|wikidata|"
                           r"wikisource|wiktionary|wikiquote|wikibooks|meta|species|mw|phab)$")
_NOTEXT_RE = re.compile(r"^[\W_]*$")


def _strip_nested(text: str, token_re: re.Pattern) -> str:
    """Remove balanced opener..closer spans (templates or tables), nesting included."""
    out: list[str] = []
    depth = 0
    last = 0
    for m in token_re.finditer(text):
        if m.group().lstrip()[0] == "{":
            if depth == 0:
                out.append(text[last:m.start()])
            depth += 1
        elif depth:
            depth -= 1
            if depth == 0:
                last = m.end()
        else:  # stray closer outside any span
            out.append(text[last:m.start()])
            last = m.end()
    if depth == 0:
        out.append(text[last:])
    # an unclosed span runs to the end of the page: dropping it is what MediaWiki renders as garbage anyway
    return "".join(out)


def _link_replacer(drop_ns: frozenset[str]):
    def replace(m: re.Match) -> str:
        inner = m.group(1)
        target, sep, label = inner.partition("|")
        target = target.strip()
        if ":" in target:
            visible = target.startswith(":")
            prefix = target.lstrip(":").split(":", 1)[0].strip().replace("_", " ").casefold()
            if not visible and (prefix in drop_ns or _INTERWIKI_RE.match(prefix)):
                return ""
            if visible and prefix in drop_ns and not sep:
                return ""
        label = label.strip()
        return label if label else target.lstrip(":")
    return replace


def wikitext_to_text(wikitext: str, ns_names: Iterable[str]) -> str:
    """Plain text of a page: one paragraph per line. `ns_names`: namespace names whose links are dropped
    (file, media, category; localized and English, any case)."""
    drop_ns = ns_names if isinstance(ns_names, frozenset) else frozenset(n.casefold() for n in ns_names)
    text = wikitext
    if "<!--" in text:
        text = _COMMENT_RE.sub("", text)
    if "<" in text:
        text = _SELF_CLOSING_RE.sub("", text)
        text = _PAIRED_RE.sub("", text)
    if "{{" in text:
        text = _strip_nested(text, _TEMPLATE_TOKEN_RE)
    if "{|" in text:
        text = _strip_nested(text, _TABLE_TOKEN_RE)
    if "[[" in text:
        replace = _link_replacer(drop_ns)
        for _ in range(4):  # innermost first: a caption link inside [[File:...]] goes before its file link
            text, n = _LINK_RE.subn(replace, text)
            if not n or "[[" not in text:
                break
    if "[" in text:
        text = _EXTLINK_RE.sub(r"\1", text)
        if "[[" in text or "]]" in text:  # unbalanced link brackets left by broken markup
            text = text.replace("[[", "").replace("]]", "")
    if "''" in text:
        text = _QUOTES_RE.sub("", text)
    if "<" in text:
        text = _TAG_RE.sub("", _BR_RE.sub(" ", text))
    if "__" in text:
        text = _MAGIC_RE.sub("", text)
    if "&" in text:
        text = html.unescape(text)
    return "\n".join(_paragraphs(text))


def _paragraphs(text: str) -> Iterator[str]:
    for line in text.split("\n"):
        line = line.strip()
        if not line:
            continue
        first = line[0]
        if first == "=" and line.endswith("="):
            continue  # heading
        if first in "*#:;":
            line = _LIST_RE.sub("", line)
        elif first in "|!" or line.startswith("----"):
            continue  # table-row or rule leftovers
        line = _SPACE_RE.sub(" ", line).strip()
        if line and not _NOTEXT_RE.match(line):
            yield line


def markup_residue(lines: Iterable[str]) -> float:
    """Share of lines that still contain `{{`, `[[`, `|` or `<ref`."""
    total = bad = 0
    for line in lines:
        total += 1
        if "{{" in line or "[[" in line or "|" in line or "<ref" in line:
            bad += 1
    return bad / total if total else 0.0
