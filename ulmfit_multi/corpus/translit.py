"""Transliteration between Indic scripts and Latin: ITRANS, ISO 15919 and "casual" social-media spelling.

Why no package: indic-nlp-library's `ItransTransliterator` reads `offset_itrans_map.csv` from the
separately downloaded indic_nlp_resources repository (not installable offline), and
indic-transliteration (sanscript) romanizes Tamil as if it were Sanskrit (வணக்கம் -> "vaNaghghaM"),
has no Tamil ன, and leaves Malayalam chillus (ൻ ർ ൽ ൾ ൺ) untransliterated. All Indic Unicode blocks share
the ISCII layout (a letter's offset from its block start is the same in every script), so one offset
table serves every script here; Dravidian specifics (short e/o, ழ zh, ற R, ன ^n, chillus) are explicit.

Schemes:
- "itrans": ITRANS (A I U for long vowels, T D N L for retroflex, ~N ~n, zh, R for ற/റ, ^n for ன).
- "iso": ISO 15919 with diacritics (ā ṭ ṇ ḷ ḻ ṟ ṉ).
- "casual": how people type on social media: lowercase ASCII, no diacritics, long vowels written short,
  retroflexes like dentals, dental t -> "th", ஞ/ഞ -> "nj", ங/ങ -> "ng", ழ/ഴ -> "zh", geminated
  digraphs written once (பத்து -> "pathu"), Malayalam chillus as the bare consonant (ഞാൻ -> "njan") and
  word-final virama as "u" (ഒന്ന് -> "onnu"), Malayalam ന്റ -> "nt" (എന്റെ -> "ente"). Tamil also voices
  by position: single க/ட between vowels -> g/d (after ங/ண too: எங்க -> "enga"), single ச -> "s", ச்ச -> "ch",
  ஞ்ச -> "nj", ம்ப -> "mb", ன்ற -> "ndr" (நன்றி -> "nandri"), ற்ற -> "tr". Hindi/Marathi drop the word-final
  inherent a (नमस्ते -> "namaste", भारत -> "bharat"). Casual is lossy; `to_native` reads it back best effort.

Round trips (native -> itrans/iso -> native) are exact for text made of the letters of one script, except:
native digits become ASCII digits; ZWJ/ZWNJ are dropped (the old Malayalam chillu spelling ന്‍ becomes ൻ);
Malayalam mid-word chillus are written "n*" and word-final virama "~u" (ISO "ŭ", as ISO 15919 does).
Only runs in the language's own script are transliterated: Latin and English tokens pass through.
"""

from __future__ import annotations

import re
import unicodedata

from ..errors import UlmfitError

BLOCKS: dict[str, int] = {
    "hi": 0x0900, "mr": 0x0900, "ne": 0x0900, "sa": 0x0900, "bn": 0x0980, "as": 0x0980, "pa": 0x0A00,
    "gu": 0x0A80, "or": 0x0B00, "ta": 0x0B80, "te": 0x0C00, "kn": 0x0C80, "ml": 0x0D00,
}
DRAVIDIAN = {"ta", "te", "kn", "ml"}
SCHEMES = ("itrans", "iso", "casual")

# offset -> (itrans, iso)
_VOWELS = {
    0x05: ("a", "a"), 0x06: ("A", "ā"), 0x07: ("i", "i"), 0x08: ("I", "ī"), 0x09: ("u", "u"),
    0x0A: ("U", "ū"), 0x0B: ("RRi", "r̥"), 0x0C: ("LLi", "l̥"), 0x0D: ("e.c", "ê"), 0x10: ("ai", "ai"),
    0x11: ("A.c", "ô"), 0x14: ("au", "au"), 0x60: ("RRI", "r̥̄"), 0x61: ("LLI", "l̥̄"),
}
_SIGNS = {  # vowel sign offset -> independent vowel offset
    0x3E: 0x06, 0x3F: 0x07, 0x40: 0x08, 0x41: 0x09, 0x42: 0x0A, 0x43: 0x0B, 0x44: 0x60, 0x45: 0x0D,
    0x46: 0x0E, 0x47: 0x0F, 0x48: 0x10, 0x49: 0x11, 0x4A: 0x12, 0x4B: 0x13, 0x4C: 0x14, 0x62: 0x0C,
    0x63: 0x61, 0x57: 0x14,
}
_CONSONANTS = {
    0x15: ("k", "k"), 0x16: ("kh", "kh"), 0x17: ("g", "g"), 0x18: ("gh", "gh"), 0x19: ("~N", "ṅ"),
    0x1A: ("ch", "c"), 0x1B: ("Ch", "ch"), 0x1C: ("j", "j"), 0x1D: ("jh", "jh"), 0x1E: ("~n", "ñ"),
    0x1F: ("T", "ṭ"), 0x20: ("Th", "ṭh"), 0x21: ("D", "ḍ"), 0x22: ("Dh", "ḍh"), 0x23: ("N", "ṇ"),
    0x24: ("t", "t"), 0x25: ("th", "th"), 0x26: ("d", "d"), 0x27: ("dh", "dh"), 0x28: ("n", "n"),
    0x29: ("^n", "ṉ"), 0x2A: ("p", "p"), 0x2B: ("ph", "ph"), 0x2C: ("b", "b"), 0x2D: ("bh", "bh"),
    0x2E: ("m", "m"), 0x2F: ("y", "y"), 0x30: ("r", "r"), 0x31: ("R", "ṟ"), 0x32: ("l", "l"),
    0x33: ("L", "ḷ"), 0x34: ("zh", "ḻ"), 0x35: ("v", "v"), 0x36: ("sh", "ś"), 0x37: ("Sh", "ṣ"),
    0x38: ("s", "s"), 0x39: ("h", "h"),
    # Devanagari nukta letters (NFC keeps them as base + nukta, see _NUKTA)
    0x58: ("q", "q"), 0x59: ("K", "ḵh"), 0x5A: ("G", "ġ"), 0x5B: ("z", "z"), 0x5C: (".D", "ṛ"),
    0x5D: (".Dh", "ṛh"), 0x5E: ("f", "f"), 0x5F: ("Y", "ẏ"),
}
_NUKTA = {0x15: 0x58, 0x16: 0x59, 0x17: 0x5A, 0x1C: 0x5B, 0x21: 0x5C, 0x22: 0x5D, 0x2B: 0x5E, 0x2F: 0x5F}
_OTHER = {0x01: (".N", "m̐"), 0x02: ("M", "ṁ"), 0x03: ("H", "ḥ"), 0x3D: (".a", "'"), 0x50: ("OM", "oṁ")}
_CHILLU = {0x7A: 0x23, 0x7B: 0x28, 0x7C: 0x30, 0x7D: 0x32, 0x7E: 0x33, 0x7F: 0x15}  # Malayalam
_VIRAMA, _NUKTA_SIGN = 0x4D, 0x3C
_SEP, _CHILLU_MARK, _SAMVRUTHO = "_", "*", ("~u", "ŭ")
# Tamil lacks voiced and aspirated consonants: `to_native` writes the unvoiced one.
_TAMIL_FALLBACK = {0x16: 0x15, 0x17: 0x15, 0x18: 0x15, 0x1B: 0x1A, 0x1D: 0x1C, 0x20: 0x1F, 0x21: 0x1F,
                   0x22: 0x1F, 0x25: 0x24, 0x26: 0x24, 0x27: 0x24, 0x2B: 0x2A, 0x2C: 0x2A, 0x2D: 0x2A,
                   0x58: 0x15, 0x59: 0x15, 0x5A: 0x15, 0x5B: 0x1C, 0x5C: 0x1F, 0x5D: 0x1F, 0x5E: 0x2A,
                   0x5F: 0x2F, 0x02: 0x2E}

# casual spelling of consonant offsets (contextual rules in _casual_piece)
_CASUAL_CONS = {
    0x15: "k", 0x16: "kh", 0x17: "g", 0x18: "gh", 0x19: "ng", 0x1A: "ch", 0x1B: "chh", 0x1C: "j",
    0x1D: "jh", 0x1E: "nj", 0x1F: "t", 0x20: "th", 0x21: "d", 0x22: "dh", 0x23: "n", 0x24: "th",
    0x25: "th", 0x26: "d", 0x27: "dh", 0x28: "n", 0x29: "n", 0x2A: "p", 0x2B: "ph", 0x2C: "b", 0x2D: "bh",
    0x2E: "m", 0x2F: "y", 0x30: "r", 0x31: "r", 0x32: "l", 0x33: "l", 0x34: "zh", 0x35: "v", 0x36: "sh",
    0x37: "sh", 0x38: "s", 0x39: "h", 0x58: "q", 0x59: "kh", 0x5A: "g", 0x5B: "z", 0x5C: "d",
    0x5D: "dh", 0x5E: "f", 0x5F: "y",
}
_CASUAL_VOWEL = {0x05: "a", 0x06: "a", 0x07: "i", 0x08: "i", 0x09: "u", 0x0A: "u", 0x0B: "ri", 0x0C: "li",
                 0x0D: "e", 0x0E: "e", 0x0F: "e", 0x10: "ai", 0x11: "o", 0x12: "o", 0x13: "o", 0x14: "au",
                 0x60: "ri", 0x61: "li"}
_CASUAL_OTHER = {0x01: "n", 0x02: "m", 0x03: "h", 0x3D: "", 0x50: "om"}


def _check(lang: str, scheme: str) -> int:
    if lang not in BLOCKS:
        raise UlmfitError(f"transliteration: no Indic script known for language {lang!r}; known: {sorted(BLOCKS)}")
    if scheme not in SCHEMES:
        raise UlmfitError(f"transliteration: unknown scheme {scheme!r}; use one of {SCHEMES}")
    return BLOCKS[lang]


def _vowel_table(lang: str) -> dict[int, tuple[str, str]]:
    """Vowel offsets -> (itrans, iso); Dravidian scripts have short e/o, the others only long ones."""
    table = dict(_VOWELS)
    if lang in DRAVIDIAN:
        table.update({0x0E: ("e", "e"), 0x0F: ("E", "ē"), 0x12: ("o", "o"), 0x13: ("O", "ō")})
    else:
        table.update({0x0E: ("^e", "ĕ"), 0x0F: ("e", "ē"), 0x12: ("^o", "ŏ"), 0x13: ("o", "ō")})
    return table


# A syllable piece: (kind, offset) with kind in cons | vowel | sign (inherent "a" is vowel 0x05 after cons)
Piece = tuple[str, int]


def _parse_native(run: str, base: int, lang: str) -> list[Piece]:
    """Native-script run -> pieces: ("c", cons), ("v", vowel), ("a", inherent), ("x", sign), ("h", final virama)."""
    offs = [ord(ch) - base for ch in run if ch not in "\u200c\u200d"]
    pieces: list[Piece] = []
    i = 0
    while i < len(offs):
        o = offs[i]
        nxt = offs[i + 1] if i + 1 < len(offs) else None
        if o in _CONSONANTS or o in _CHILLU:
            chillu = o in _CHILLU
            if chillu:
                o = _CHILLU[o]
            elif nxt == _NUKTA_SIGN and o in _NUKTA:
                o, i = _NUKTA[o], i + 1
                nxt = offs[i + 1] if i + 1 < len(offs) else None
            pieces.append(("c", o))
            if chillu:
                pieces.append(("l", 0))
            elif nxt == _VIRAMA:
                i += 1
                after = offs[i + 1] if i + 1 < len(offs) else None
                if after is None and lang == "ml":
                    pieces.append(("u", 0))  # samvruthokaram
                else:
                    pieces.append(("h", 0))
            elif nxt in _SIGNS:
                i += 1
                pieces.append(("v", _SIGNS[nxt]))
            else:
                pieces.append(("a", 0x05))
        elif o in _VOWELS or o in (0x0E, 0x0F, 0x12, 0x13):
            pieces.append(("V", o))
        elif o in _OTHER:
            pieces.append(("x", o))
        elif 0x66 <= o <= 0x6F:
            pieces.append(("d", o - 0x66))
        else:
            pieces.append(("?", o + base))  # unknown mark: passed through as is
        i += 1
    return pieces


def _roman_piece(kind: str, o: int, k: int, vowels: dict[int, tuple[str, str]]) -> str:
    if kind == "c":
        return _CONSONANTS[o][k]
    if kind in ("v", "a", "V"):
        return vowels[o][k]
    if kind == "x":
        return _OTHER[o][k]
    if kind == "d":
        return str(o)
    if kind == "l":
        return ""
    if kind == "u":
        return _SAMVRUTHO[k]
    if kind == "h":
        return ""
    return chr(o)


def _romanize_run(pieces: list[Piece], lang: str, k: int) -> str:
    """Pieces -> ITRANS (k=0) or ISO (k=1), inserting "_" where greedy reading would merge two pieces."""
    vowels = _vowel_table(lang)
    keys = _reverse_table(lang, k)
    out: list[str] = []
    tail = ""  # output so far without separators, to spot keys that would form across a boundary
    for j, (kind, o) in enumerate(pieces):
        s = _roman_piece(kind, o, k, vowels)
        if kind == "l" and j + 1 < len(pieces):
            s = _CHILLU_MARK  # mid-word chillu
        if s and _crosses(tail[-3:], s, keys):
            out.append(_SEP)
        out.append(s)
        tail += s
    return "".join(out)


def _crosses(left: str, right: str, keys: dict[str, tuple[str, int]]) -> bool:
    """Whether some key (other than kSh, which reads back the same) spans the join of `left` and `right`."""
    both = left + right
    for start in range(len(left)):
        for size in range(len(left) - start + 1, min(5, len(both) - start + 1)):
            key = both[start:start + size]
            if key in keys and key != "kSh":
                return True
    return False


def _casual_run(pieces: list[Piece], lang: str) -> str:
    """Pieces -> casual lowercase ASCII (rules in the module docstring)."""
    out: list[str] = []
    n = len(pieces)

    def cons(j: int) -> int | None:
        return pieces[j][1] if 0 <= j < n and pieces[j][0] == "c" else None

    def vowel_before(j: int) -> bool:  # consonant at j follows a vowel (not a virama)
        return j > 0 and pieces[j - 1][0] in ("a", "v", "V")

    def vowel_after(j: int) -> bool:
        return j + 1 < n and pieces[j + 1][0] in ("a", "v")

    for j, (kind, o) in enumerate(pieces):
        if kind == "c":
            prev_c = cons(j - 2) if j >= 2 and pieces[j - 1][0] == "h" else None
            next_c = cons(j + 2) if j + 1 < n and pieces[j + 1][0] == "h" else None
            s = _CASUAL_CONS.get(o, "")
            if o == 0x24 and lang not in DRAVIDIAN:
                s = "t"  # "th" for dental t is a Dravidian habit
            rule = None
            if lang == "ta":
                rule = _tamil_casual(o, prev_c, vowel_before(j), vowel_after(j), next_c)
            elif lang == "ml":
                rule = _malayalam_casual(o, prev_c, next_c)
            elif o == 0x1E and prev_c == 0x1C:
                rule = "y"  # ज्ञ -> gy
            elif o == 0x1C and next_c == 0x1E:
                rule = "g"
            if rule is not None:
                s = rule
            elif prev_c == o and len(s) > 1:
                s = ""  # geminated digraph written once: த்த -> th
            out.append(s)
        elif kind == "a":
            # schwa deletion: final inherent a of a word of 2+ syllables, not after a cluster
            last = j == n - 1 and lang in ("hi", "mr", "ne") and j > 1 and not (j >= 2 and pieces[j - 2][0] == "h")
            out.append("" if last else "a")
        elif kind in ("v", "V"):
            out.append(_CASUAL_VOWEL.get(o, ""))
        elif kind == "u":
            out.append("u")
        elif kind == "x" and o == 0x02:  # anusvara: m before labials and at the end, else n
            nxt = cons(j + 1)
            out.append("m" if nxt is None or nxt in (0x2A, 0x2B, 0x2C, 0x2D, 0x2E) else "n")
        elif kind == "x":
            out.append(_CASUAL_OTHER.get(o, ""))
        elif kind == "d":
            out.append(str(o))
    text = "".join(out)
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")


def _tamil_casual(o: int, prev_c: int | None, v_before: bool, v_after: bool, next_c: int | None) -> str | None:
    """Tamil consonants voiced or softened by position (see module docstring); None = default spelling."""
    single = prev_c is None
    if o == 0x15 and ((single and v_before and v_after) or prev_c == 0x19):
        return "g"
    if o == 0x19 and next_c == 0x15:
        return "n"
    if o == 0x1F and ((single and v_before and v_after) or prev_c == 0x23):
        return "d"
    if o == 0x1A:
        if prev_c == 0x1E:
            return "j"
        if prev_c == 0x1A:
            return ""
        return "ch" if next_c == 0x1A or not single else "s"
    if o == 0x1E and next_c == 0x1A:
        return "n"
    if o == 0x2A and prev_c == 0x2E:
        return "b"
    if o == 0x31:
        if prev_c == 0x29:
            return "dr"
        if prev_c == 0x31:
            return "r"
        if next_c == 0x31:
            return "t"
    return None


def _malayalam_casual(o: int, prev_c: int | None, next_c: int | None) -> str | None:
    """Malayalam clusters typed differently from their letters; None = default spelling."""
    if o == 0x31 and prev_c in (0x28, 0x31):
        return "t"  # ന്റ -> nt, റ്റ -> tt
    if o == 0x31 and next_c == 0x31:
        return "t"
    if o == 0x19 and next_c in (0x19, 0x15):
        return "n"  # ങ്ങ -> ng, ങ്ക -> nk
    if o == 0x19 and prev_c == 0x19:
        return "g"
    return None


def _runs(text: str, base: int) -> list[tuple[bool, str]]:
    """Split text into (is_native, run) pieces; joiners belong to native runs."""
    out: list[tuple[bool, str]] = []
    for m in re.finditer(f"[{chr(base)}-{chr(base + 0x7F)}\u200c\u200d]+|[^{chr(base)}-{chr(base + 0x7F)}]+",
                         text):
        run = m.group(0)
        native = base <= ord(run[0]) <= base + 0x7F or run[0] in "\u200c\u200d"
        out.append((native, run))
    return out


def romanize(text: str, lang: str, *, scheme: str = "iso") -> str:
    """Native-script runs of `text` -> Latin in `scheme`; everything else is left as it is."""
    base = _check(lang, scheme)
    text = unicodedata.normalize("NFC", text)
    if lang == "ml":  # chillu + virama (Unicode 9 ൻ്റ) is the same cluster as ന്റ
        text = re.sub("[\u0d7a-\u0d7f]\u0d4d", lambda m: chr(_CHILLU[ord(m.group(0)[0]) - base] + base) + "\u0d4d",
                      text)
        # old chillu spelling: consonant + virama + ZWJ
        text = re.sub("([\u0d23\u0d28\u0d30\u0d32\u0d33\u0d15])\u0d4d\u200d",
                      lambda m: chr({v: k for k, v in _CHILLU.items()}[ord(m.group(1)) - base] + base), text)
    out = []
    for native, run in _runs(text, base):
        if not native:
            out.append(run)
            continue
        pieces = _parse_native(run, base, lang)
        out.append(_casual_run(pieces, lang) if scheme == "casual" else _romanize_run(pieces, lang, SCHEMES.index(scheme)))
    return "".join(out)


_REV_CACHE: dict[tuple[str, int], dict[str, tuple[str, int]]] = {}


def _reverse_table(lang: str, k: int) -> dict[str, tuple[str, int]]:
    """Latin key -> (kind, offset) for ITRANS (k=0) or ISO (k=1), with common ITRANS aliases."""
    if (lang, k) in _REV_CACHE:
        return _REV_CACHE[(lang, k)]
    table: dict[str, tuple[str, int]] = {}
    for o, names in _CONSONANTS.items():
        table[names[k]] = ("c", o)
    for o, names in _vowel_table(lang).items():
        table[names[k]] = ("V", o)
    for o, names in _OTHER.items():
        table[names[k]] = ("x", o)
    table[_SAMVRUTHO[k]] = ("u", 0)
    table[_CHILLU_MARK] = ("l", 0)
    table[_SEP] = ("s", 0)
    if k == 0:
        table["kSh"] = ("k", 0)  # क्ष, built in _latin_to_native
        for alias, key in {"aa": "A", "ii": "I", "uu": "U", "ee": "I", "oo": "U", "c": "ch", "w": "v",
                           "x": "kSh", "R^i": "RRi", ".m": "M", "L^i": "LLi"}.items():
            if key in table and alias not in table:
                table[alias] = table[key]
    _REV_CACHE[(lang, k)] = table
    return table


def _longest(text: str, i: int, keys: dict[str, tuple[str, int]]) -> int:
    for size in (4, 3, 2, 1):
        if text[i:i + size] in keys and len(text[i:i + size]) == size:
            return size
    return 0


def _native_char(o: int, base: int, lang: str) -> str:
    if lang == "ta":
        o = _TAMIL_FALLBACK.get(o, o)
    if 0x58 <= o <= 0x5F and base != 0x0900:
        return chr(base + {v: k for k, v in _NUKTA.items()}[o])
    if 0x58 <= o <= 0x5F:
        inv = {v: k for k, v in _NUKTA.items()}
        return chr(base + inv[o]) + chr(base + _NUKTA_SIGN)
    return chr(base + o)


def _latin_to_native(text: str, base: int, lang: str, k: int) -> str:
    """Greedy longest-match reading of ITRANS/ISO; unknown characters pass through and end a syllable."""
    keys = _reverse_table(lang, k)
    out: list[str] = []
    pending: int | None = None  # consonant offset waiting for its vowel
    chillu_of = {v: c for c, v in _CHILLU.items()}

    def close(word_end: bool) -> None:
        nonlocal pending
        if pending is None:
            return
        if word_end and lang == "ml" and pending in chillu_of:
            out[-1] = chr(base + chillu_of[pending])
        else:
            out.append(chr(base + _VIRAMA))
        pending = None

    i = 0
    while i < len(text):
        size = _longest(text, i, keys)
        if not size:
            close(word_end=True)
            ch = text[i]
            out.append(ch)
            i += 1
            continue
        kind, o = keys[text[i:i + size]]
        i += size
        if kind == "k":  # kSh = क्ष
            close(False)
            out.append(_native_char(0x15, base, lang) + chr(base + _VIRAMA) + _native_char(0x37, base, lang))
            pending = 0x37
        elif kind == "c":
            close(False)
            out.append(_native_char(o, base, lang))
            pending = o
        elif kind == "V":
            if pending is not None:
                if o != 0x05:
                    sign = next(s for s, v in _SIGNS.items() if v == o)
                    out.append(chr(base + sign))
                pending = None
            else:
                out.append(chr(base + o))
        elif kind == "u":
            if pending is not None:
                out.append(chr(base + _VIRAMA))
                pending = None
            else:
                out.append(chr(base + 0x09))
        elif kind == "l":
            if pending is not None and lang == "ml" and pending in chillu_of:
                out[-1] = chr(base + chillu_of[pending])
                pending = None
        elif kind == "s":
            continue
        else:  # signs
            close(False)
            o = _TAMIL_FALLBACK.get(o, o) if lang == "ta" else o
            if lang == "ta" and o == 0x2E:
                out.append(chr(base + 0x2E) + chr(base + _VIRAMA))
            else:
                out.append(chr(base + o))
    close(word_end=True)
    return "".join(out)


_CASUAL_TO_ITRANS = [("ng", "~N"), ("nj", "~n"), ("ee", "I"), ("oo", "U"), ("aa", "A"), ("sh", "Sh")]


def to_native(text: str, lang: str, *, scheme: str = "itrans") -> str:
    """Latin tokens of `text` (read as `scheme`) -> native script, best effort; other tokens pass through."""
    base = _check(lang, scheme)
    text = unicodedata.normalize("NFC", text)
    k = 1 if scheme == "iso" else 0

    def convert(m: re.Match) -> str:
        word = m.group(0)
        if scheme == "casual":
            word = word.lower()
            for a, b in _CASUAL_TO_ITRANS:
                word = word.replace(a, b)
        return _latin_to_native(word, base, lang, k)

    # a "word" is a run of Latin letters and the ITRANS/ISO punctuation keys (~ ^ . _ * ')
    return re.sub(r"(?:[A-Za-z\u00C0-\u024F\u1E00-\u1EFF\u0300-\u036F~^_*]|\.(?=[A-Za-z])|'(?=\w))+", convert, text)
