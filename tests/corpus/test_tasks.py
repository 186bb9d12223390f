"""Task loaders on small files written in the real formats (see ../shared/data/README.md), with their quirks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ulmfit_multi.config import Task
from ulmfit_multi.corpus.tasks import load_split, load_task, normalize_label
from ulmfit_multi.errors import DataError

MR_LABELS = {"-1": "negative", "0": "neutral", "1": "positive"}
TA_LABELS = {"Positive": "positive", "Negative": "negative", "Mixed_feelings": "mixed_feelings",
             "unknown_state": "unknown_state", "not-Tamil": "not_tamil"}
KN_LABELS = {"Positive": "positive", "Negative": "negative", "Mixed feelings": "mixed_feelings",
             "unknown state": "unknown_state", "not-Kannada": "not_kannada"}
ZWJ = "\u200d"


def _write(path: Path, content: str, *, newline: str = "\n") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write(content.replace("\n", newline))
    return path


def _resolver(root: Path):
    def resolve(rel: str) -> Path | None:
        p = root / rel
        return p if p.is_file() else None
    return resolve


def _fire_spec(name: str, labels: dict[str, str], **kw) -> Task:
    """A DravidianCodeMix task: TSV read with QUOTE_NONE, labels in the `category` column."""
    return Task(name=name, format="tsv", label="category", quoting="none", labels=labels, **kw)


def _labels(data, role: str) -> list[str]:
    return [data.classes[i] for i in data.splits[role].labels]


# ------------------------------------------------------------------ label normalization


def test_normalize_label():
    assert normalize_label("Positive ") == normalize_label("positive") == "positive"
    assert normalize_label("Mixed feelings") == normalize_label("Mixed_feelings") == "mixed_feelings"
    assert normalize_label("not-Tamil") == normalize_label("not_tamil")
    assert normalize_label("-1") == "-1"
    assert normalize_label("-1") != normalize_label("1")
    assert normalize_label(" 0 ") == "0"


# ------------------------------------------------------------------ the real formats


def test_mahasent_gt_tweet_label_political(tmp_path):
    _write(tmp_path / "GT/tweets-train.csv",
           "tweet,label,political\n"
           "आज छान दिवस आहे,1,0\n"
           "\"वाईट, खूप वाईट\",-1,1\n"
           "ठीक आहे,0,0\n", newline="\r\n")  # the real GT files have CRLF line ends
    spec = Task(name="gt", text="tweet", label="label", labels=MR_LABELS, splits={"train": "GT/tweets-train.csv"})
    data = load_task(spec, _resolver(tmp_path))
    assert data.classes == ["negative", "neutral", "positive"]
    split = data.splits["train"]
    assert split.texts == ["आज छान दिवस आहे", "वाईट, खूप वाईट", "ठीक आहे"]
    assert _labels(data, "train") == ["positive", "negative", "neutral"]
    assert split.labels.dtype == np.int64
    assert data.unavailable == {}


@pytest.mark.parametrize("text_col", ["marathi_sentence", "marathi_text"])
def test_mahasent_mr_st_unnamed_index_column(tmp_path, text_col):
    _write(tmp_path / "x.csv",
           f",{text_col},label\n"
           "0,\"चित्रपट छान, आवडला\",1\n"
           "1,कंटाळवाणा,-1\n"
           "2,सामान्य,0\n")
    spec = Task(name="mr", text=text_col, labels=MR_LABELS, splits={"valid": "x.csv"})
    data = load_task(spec, _resolver(tmp_path))
    assert data.splits["valid"].texts == ["चित्रपट छान, आवडला", "कंटाळवाणा", "सामान्य"]
    assert _labels(data, "valid") == ["positive", "negative", "neutral"]  # '-1' is not '1'


def test_l3cube_quoted_newlines_and_zero_width_joiner(tmp_path):
    multi = f"  कोरोना काळात{ZWJ}\n\n#AatmaNirbharBharat #Maharashtra"
    _write(tmp_path / "tweets-valid.csv",
           "tweet,label\n"
           f"\"{multi}\",1\n"
           f"\"{ZWJ}मी र{ZWJ}्‍या घरी\",-1\n"
           "\"\"\"quoted\"\" word\",0\n", newline="\r\n")
    spec = Task(name="l3", text="tweet", labels=MR_LABELS, splits={"valid": "tweets-valid.csv"})
    split = load_task(spec, _resolver(tmp_path)).splits["valid"]
    assert len(split.texts) == 3
    # the newlines inside the quoted field are kept, as "\n" (the file's are CRLF)
    first = split.texts[0]
    assert "\r" not in first
    assert first.startswith("कोरोना काळात") and "\n\n#AatmaNirbharBharat" in first
    # leading zero-width joiner stripped, the ones inside the word kept
    assert split.texts[1] == f"मी र{ZWJ}्‍या घरी"
    assert split.texts[2] == "\"quoted\" word"
    assert split.labels.tolist() == [2, 0, 1]


def test_zero_width_and_spaces_mixed_at_the_ends(tmp_path):
    # real FIRE texts end in "word \u200b" and begin with " \u200b\u200b ": no space may survive at either end,
    # and a text of only spaces and zero-width characters is empty
    _write(tmp_path / "dev.tsv",
           "text\tcategory\n"
           f"Super song \u200b\tPositive\n"
           f" \u200b\u200b Hands up{ZWJ} \tNegative\n"
           f" \u200b \ufeff \tPositive\n")
    spec = _fire_spec("kn", KN_LABELS, splits={"valid": "dev.tsv"}, on_bad_row="skip")
    split = load_task(spec, _resolver(tmp_path)).splits["valid"]
    assert split.texts == ["Super song", "Hands up"]
    assert split.skipped_lines == [4]


def test_fire2020_quote_none_trailing_space_labels(tmp_path):
    _write(tmp_path / "tamil_train.tsv",
           "text\tcategory\n"
           " Daily likes & views pakka vanthavaga ellarukum vanakkam\tPositive \n"
           " 25 k dislikes ethuku da \"intha trailerku\tNegative \n"  # a stray double quote, QUOTE_NONE
           " #Lyca unna nenacha pavama iruku ya\tMixed_feelings \n"
           " idhu enna\tunknown_state \n"
           " it looks like hindi movie\tnot-Tamil \n"
           " vera level \"\tpositive\n")
    spec = _fire_spec("f20", TA_LABELS, splits={"train": "tamil_train.tsv"})
    data = load_task(spec, _resolver(tmp_path))
    split = data.splits["train"]
    assert split.texts[0] == "Daily likes & views pakka vanthavaga ellarukum vanakkam"  # leading space stripped
    assert split.texts[1] == "25 k dislikes ethuku da \"intha trailerku"
    assert split.texts[5] == "vera level \""
    assert _labels(data, "train") == ["positive", "negative", "mixed_feelings", "unknown_state", "not_tamil",
                                      "positive"]


def test_fire2020_test_answer_crlf_and_fire2021_test_with_id(tmp_path):
    _write(tmp_path / "tamil_test_answer.tsv",
           "id\ttext\tcategory\n"
           "ta_sent_1\tYarayellam FDFS ppga ippove ready agitinga\tPositive\n"
           "ta_sent_2\tmokke movie .. waste of time\tNegative\n", newline="\r\n")
    _write(tmp_path / "malayalam_sentiment_full_test_withlabels.tsv",
           "id\ttext\tcategory\n"
           "Mal_1\tpadam kollam\tPositive\n"
           "Mal_2\tpoor movie\tNegative\n"
           "Mal_3\tthis is hindi\tnot-malayalam\n")
    ml_labels = {**{k: v for k, v in TA_LABELS.items() if k != "not-Tamil"}, "not-malayalam": "not_malayalam"}
    spec = _fire_spec("t", TA_LABELS, splits={"test": "tamil_test_answer.tsv"})
    data = load_task(spec, _resolver(tmp_path))
    assert data.splits["test"].texts == ["Yarayellam FDFS ppga ippove ready agitinga", "mokke movie .. waste of time"]
    assert _labels(data, "test") == ["positive", "negative"]  # no '\r' left in the label
    spec = _fire_spec("m", ml_labels, splits={"test": "malayalam_sentiment_full_test_withlabels.tsv"})
    data = load_task(spec, _resolver(tmp_path))
    assert data.splits["test"].texts == ["padam kollam", "poor movie", "this is hindi"]
    assert _labels(data, "test") == ["positive", "negative", "not_malayalam"]


def test_kannada_mixed_feelings_with_spaces(tmp_path):
    _write(tmp_path / "kannada_sentiment_full_dev.tsv",
           "text\tcategory\n"
           "Binduge saryagi ugithidira good go ahead  we are enjoying well\tMixed feelings\n"
           "yen song guru ...super\tPositive\n"
           "my fevorat story\tnot-Kannada\n"
           "gottilla\tunknown state\n"
           "also mixed\tMixed_feelings\n")
    spec = _fire_spec("kn", KN_LABELS, splits={"valid": "kannada_sentiment_full_dev.tsv"})
    data = load_task(spec, _resolver(tmp_path))
    assert data.classes == ["positive", "negative", "mixed_feelings", "unknown_state", "not_kannada"]
    assert _labels(data, "valid") == ["mixed_feelings", "positive", "not_kannada", "unknown_state", "mixed_feelings"]


def test_unlabeled_split_without_label_column(tmp_path):
    path = _write(tmp_path / "kannada_sentiment_full_test_withoutlabels.tsv",
                  "id\ttext\n" "Kan_1\tsuper song\n" "Kan_2\tchennagide\n")
    spec = _fire_spec("kn", KN_LABELS)
    split = load_split(path, spec, "unlabeled")
    assert split.texts == ["super song", "chennagide"]
    assert split.labels.tolist() == [-1, -1]
    with pytest.raises(DataError, match="no label column 'category'"):
        load_split(path, spec, "test")


def test_unavailable_split_is_reported_not_raised(tmp_path):
    _write(tmp_path / "dev.tsv", "text\tcategory\n" "nalla padam\tPositive\n")
    spec = _fire_spec("kn", TA_LABELS, splits={"valid": "dev.tsv", "test": "missing_test_withlabels.tsv"})
    data = load_task(spec, _resolver(tmp_path))
    assert set(data.splits) == {"valid"}
    assert "test" in data.unavailable and "missing_test_withlabels.tsv" in data.unavailable["test"]


# ------------------------------------------------------------------ errors name the file and the physical line


MULTILINE_HEAD = ("tweet,label\n"          # line 1
                  "ok one,1\n"             # line 2
                  "\"first\nsecond\nthird\",0\n"  # lines 3-5
                  "ok two,-1\n")           # line 6


@pytest.mark.parametrize("bad_row, problem", [
    ("some text,2\n", "label '2'"),              # unknown label
    ("\"  \",1\n", "empty text"),                # empty text
    ("a,b,1\n", "expected 2 fields, got 3"),     # wrong field count
    (",\n", "empty text"),                       # a row of empty fields is not a blank line
    (f"\"{ZWJ}\",0\n", "empty text"),             # only a zero-width joiner
])
def test_bad_row_error_names_file_and_physical_line(tmp_path, bad_row, problem):
    path = _write(tmp_path / "tweets-test.csv",
                  MULTILINE_HEAD + bad_row + "\n  \nok three,0\n")  # bad row on line 7; blank lines are ignored
    spec = Task(name="t", text="tweet", labels=MR_LABELS, splits={"test": "tweets-test.csv"})
    with pytest.raises(DataError) as e:
        load_task(spec, _resolver(tmp_path))
    msg = str(e.value)
    assert "tweets-test.csv" in msg and str(path) in msg
    assert "line 7:" in msg
    assert problem in msg


def test_bad_row_line_number_with_crlf_and_quoted_newlines(tmp_path):
    _write(tmp_path / "tweets-test.csv", MULTILINE_HEAD + "\"x\ny\",1\n" + "bad,7\n", newline="\r\n")
    spec = Task(name="t", text="tweet", labels=MR_LABELS, splits={"test": "tweets-test.csv"})
    with pytest.raises(DataError, match=r"tweets-test\.csv: line 9: label '7'"):
        load_task(spec, _resolver(tmp_path))


def test_tsv_wrong_field_count_line(tmp_path):
    _write(tmp_path / "tamil_dev.tsv",
           "text\tcategory\n" " a\tPositive \n" " b \" c\tNegative \n" " too\tmany\tPositive \n")
    spec = _fire_spec("t", TA_LABELS, splits={"valid": "tamil_dev.tsv"})
    with pytest.raises(DataError, match=r"tamil_dev\.tsv: line 4: expected 2 fields, got 3"):
        load_task(spec, _resolver(tmp_path))


def test_skip_mode_counts_and_lists_lines(tmp_path):
    _write(tmp_path / "tweets-train.csv",
           MULTILINE_HEAD          # lines 1-6
           + ",0,0\n"              # line 7: empty tweet (as tweets-train.csv line 7476); also a wrong field count
           + "good,1\n"            # line 8
           + ",1\n"                # line 9: empty tweet
           + "odd,positive?\n"     # line 10: unknown label
           + "last,0\n")           # line 11
    spec = Task(name="t", text="tweet", labels=MR_LABELS, splits={"train": "tweets-train.csv"},
                    on_bad_row="skip")
    split = load_task(spec, _resolver(tmp_path)).splits["train"]
    assert split.skipped == 3
    assert split.skipped_lines == [7, 9, 10]
    assert split.texts == ["ok one", "first\nsecond\nthird", "ok two", "good", "last"]
    assert split.labels.tolist() == [2, 1, 0, 2, 1]


def test_colliding_label_keys_raise(tmp_path):
    _write(tmp_path / "a.tsv", "text\tcategory\n" "x\tPositive\n")
    spec = _fire_spec("clash", {"Positive": "positive", "positive ": "negative"}, splits={"train": "a.tsv"})
    with pytest.raises(DataError, match="clash"):
        load_task(spec, _resolver(tmp_path))
    # two spellings of the same class are fine
    spec.labels = {"Mixed feelings": "mixed", "Mixed_feelings": "mixed", "Positive": "positive"}
    assert load_task(spec, _resolver(tmp_path)).classes == ["mixed", "positive"]


def test_missing_column_and_empty_file(tmp_path):
    _write(tmp_path / "a.csv", "sentence,label\nx,1\n")
    _write(tmp_path / "empty.csv", "")
    spec = Task(name="t", text="tweet", labels=MR_LABELS, splits={"train": "a.csv"})
    with pytest.raises(DataError, match=r"a\.csv: line 1: no column 'tweet'"):
        load_task(spec, _resolver(tmp_path))
    spec.splits = {"train": "empty.csv"}
    with pytest.raises(DataError, match=r"empty\.csv"):
        load_task(spec, _resolver(tmp_path))


def test_invalid_utf8_names_the_line_and_bom_is_dropped(tmp_path):
    spec = Task(name="t", text="tweet", labels=MR_LABELS, splits={"train": "a.csv"})
    body = "tweet,label\n" + "ठीक आहे,0\n" * 3000  # past the first decoding chunk
    (tmp_path / "a.csv").write_bytes(b"\xef\xbb\xbf" + body.encode() + b"bad \xff byte,1\n")
    with pytest.raises(DataError, match=r"a\.csv: line 3002: invalid UTF-8"):
        load_task(spec, _resolver(tmp_path))
    (tmp_path / "a.csv").write_bytes(b"\xef\xbb\xbf" + body.encode())  # BOM before the header's first name
    assert len(load_task(spec, _resolver(tmp_path)).splits["train"].texts) == 3000


def test_encoding_per_task(tmp_path):
    (tmp_path / "a.csv").write_bytes("tweet,label\ncafé crème,1\n".encode("cp1252"))
    spec = Task(name="t", text="tweet", labels=MR_LABELS, splits={"train": "a.csv"})
    with pytest.raises(DataError, match=r"a\.csv: line 2: invalid UTF-8 at byte \d+ .*encoding"):
        load_task(spec, _resolver(tmp_path))
    spec.encoding = "cp1252"
    assert load_task(spec, _resolver(tmp_path)).splits["train"].texts == ["café crème"]
    (tmp_path / "b.csv").write_bytes("tweet,label\nदोन,0\n".encode("utf-16"))  # its BOM says the byte order
    spec = Task(name="t", text="tweet", labels=MR_LABELS, splits={"train": "b.csv"}, encoding="utf-16")
    assert load_task(spec, _resolver(tmp_path)).splits["train"].texts == ["दोन"]


def test_skip_mode_also_skips_undecodable_rows_and_keeps_line_numbers(tmp_path):
    (tmp_path / "a.csv").write_bytes(b"tweet,label\nok,1\n\"two\nlines \xff\",0\nbad \xfe,1\nfine,-1\n")
    spec = Task(name="t", text="tweet", labels=MR_LABELS, splits={"train": "a.csv"}, on_bad_row="skip")
    split = load_task(spec, _resolver(tmp_path)).splits["train"]
    assert split.texts == ["ok", "fine"]
    assert split.skipped_lines == [3, 5] and split.lines == [2, 6] and split.rows_read == 2


def test_unknown_encoding_is_a_recipe_error(tmp_path):
    from ulmfit_multi.errors import RecipeError

    _write(tmp_path / "a.csv", "tweet,label\nx,1\n")
    spec = Task(name="t", text="tweet", labels=MR_LABELS, splits={"train": "a.csv"}, encoding="utf-9")
    with pytest.raises(RecipeError, match="utf-9"):
        load_task(spec, _resolver(tmp_path))


def test_spec_typos_raise(tmp_path):
    from ulmfit_multi.errors import RecipeError

    with pytest.raises(RecipeError, match="quoting"):
        load_task(Task(name="t", labels=MR_LABELS, quoting="off"), _resolver(tmp_path))


def test_no_label_mapping(tmp_path):
    with pytest.raises(DataError, match="no label mapping"):
        load_task(Task(name="t", splits={}), _resolver(tmp_path))


# ------------------------------------------------------------------ the real files (mirror)

# Row counts from ../shared/data/README.md (MahaSent GT train: 12,000 rows, two with an empty tweet are skipped).
EXPECTED = {
    "mr": {
        "mahasent-gt": ({"train": 11_998, "valid": 1_500, "test": 1_500}, set()),
        "mahasent-mr": ({"train": 12_000, "valid": 1_500, "test": 1_500}, set()),
        "mahasent-st": ({"train": 12_000, "valid": 1_500, "test": 1_500}, set()),
        "l3cube-mahasent": ({"valid": 1_500, "test": 2_250}, {"train"}),
    },
    "ta": {
        "fire2020-ta": ({"train": 11_335, "valid": 1_260, "test": 3_149}, set()),
        "fire2021-ta": ({"train": 35_058, "valid": 3_962, "test": 4_402}, set()),
    },
    "ml": {
        "fire2020-ml": ({"train": 4_851, "valid": 540, "test": 1_348}, set()),
        "fire2021-ml": ({"train": 15_888, "valid": 1_766, "test": 1_962}, set()),
    },
    "kn": {
        "fire2021-kn": ({"train": 6_212, "valid": 691}, {"test"}),
    },
}


@pytest.mark.realdata
@pytest.mark.parametrize("recipe", sorted(EXPECTED))
def test_real_tasks_load(mirror_dir, recipe):
    from ulmfit_multi.config import load_recipe
    from ulmfit_multi.corpus.tasks import load_tasks

    cfg = load_recipe(recipe, "cpu")
    fetched = {}
    for task in cfg.tasks:
        for rel in task.splits.values():
            if (mirror_dir / rel).is_file():
                fetched[rel] = {"path": str(mirror_dir / rel)}
    tasks = load_tasks(cfg, fetched)
    assert set(tasks) == set(EXPECTED[recipe])
    for name, (counts, unavailable) in EXPECTED[recipe].items():
        data = tasks[name]
        assert {role: len(s.texts) for role, s in data.splits.items()} == counts, name
        assert set(data.unavailable) == unavailable, name
        for split in data.splits.values():
            assert len(split.labels) == len(split.texts)
            assert all(t and t == t.strip() for t in split.texts)
            # every class occurs in every labelled split
            assert np.bincount(split.labels, minlength=len(data.classes)).min() > 0, name
    if recipe == "mr":
        gt = tasks["mahasent-gt"].splits["train"]
        assert gt.skipped == 2 and 7476 in gt.skipped_lines
        for name in ("mahasent-gt", "mahasent-mr", "mahasent-st"):  # balanced: 4000 per class in train
            assert np.bincount(tasks[name].splits["valid"].labels).tolist() == [500, 500, 500]
    if recipe == "kn":
        assert "mixed_feelings" in tasks["fire2021-kn"].classes
        assert (tasks["fire2021-kn"].splits["train"].labels == 2).sum() > 0
