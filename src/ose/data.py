"""Data D: corpora, the train / held-out split, and the tokenizer; the task encodes the rest.

Sources: the embedded tweet corpus (ships with ose), plain-text files, JSONL with a text field
(and a label field for classification), CSV or TSV files with a header naming those columns,
folders of such files, or a Hugging Face ``datasets`` dataset saved with ``save_to_disk``.
Labels are named canonically (``label_name``) and ordered numerically where they are numbers
(``label_order``). The train / held-out split is a seeded permutation;
the task (``ose.tasks``) turns both parts into training batches and the fixed held-out
batches B.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import json
import math
import numbers
import os
import re
from dataclasses import dataclass
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from .errors import DataError

if TYPE_CHECKING:
    from .config import ExtractConfig

EMBEDDED = "embedded:tweets"
SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")  # ose's WordPiece, in id order
ROLE_NAMES = {"begin": "[CLS] or bos", "end": "[SEP] or eos", "pad": "[PAD] or pad", "mask": "[MASK] or mask"}
# What a data folder takes; a README.md beside the data is documentation, not examples (a file
# named on --data is read by its suffix, and as plain text under any other).
DATA_SUFFIXES = (".txt", ".text", ".jsonl", ".csv", ".tsv")
TABLE_DELIMITERS = {".csv": ",", ".tsv": "\t"}
SNIFF_BYTES = 64 * 1024           # how much of a file decides whether it is text
MAX_NON_TEXT = 0.1                # above this share of non-text bytes, a file is binary
# Invalid UTF-8 (decoded as U+FFFD) and control characters other than whitespace.
_NON_TEXT = re.compile(r"[\x00-\x08\x0e-\x1f\x7f-\x9f\ufffd]")
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")  # a label written as a number
_INTEGER = re.compile(r"[+-]?\d+")


@dataclass(frozen=True)
class Example:
    text: str
    label: str | None = None


# --- reading ------------------------------------------------------------------------------
#
# Readers return rows (text, raw label value, where it was read); ``_examples`` then names every
# label canonically over the whole source at once, so that a mix of kinds across a folder's
# files is caught as surely as one inside a file.

def _kind_of(value) -> str:
    """A value's type as a message names it, in JSON's words where it has them."""
    names = {bool: "a boolean", int: "a number", float: "a number", list: "a list", dict: "an object",
             type(None): "null"}
    return names.get(type(value), f"a {type(value).__name__}")


def _text(value, field: str, where: str) -> str:
    if value is None:
        raise DataError(f"{where}: no text field {field!r}")
    if not isinstance(value, str):
        raise DataError(f"{where}: field {field!r} is {_kind_of(value)}, not a string")
    return value


def _read_jsonl(lines, source: str, cfg: ExtractConfig) -> list[tuple]:
    rows = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{source}:{n}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(f"{where}: invalid JSON ({e.msg})") from None
        if not isinstance(row, dict):
            raise DataError(f"{where}: {_kind_of(row)}, not a JSON object with a text field {cfg.text_field!r}")
        rows.append((_text(row.get(cfg.text_field), cfg.text_field, where), row.get(cfg.label_field), where))
    return rows


def _read_table(path: Path, cfg: ExtractConfig) -> list[tuple]:
    """A CSV or TSV file with a header row, its columns named by the text and label fields."""
    # newline="": the csv module reads line breaks inside quoted fields itself.
    with path.open(encoding="utf-8-sig", errors="replace", newline="") as f:
        reader = csv.DictReader(f, delimiter=TABLE_DELIMITERS[path.suffix.lower()])
        try:
            columns = reader.fieldnames or []
            if cfg.text_field not in columns:
                raise DataError(f"{path}: no column {cfg.text_field!r} in its header (columns: "
                                f"{', '.join(columns) or 'none'}); name the text column with --text-field")
            rows = []
            for row in reader:
                where = f"{path}:{reader.line_num}"
                if None in row or None in row.values():  # the csv module's marks of extra and missing fields
                    given = sum(v is not None for k, v in row.items() if k is not None) + len(row.get(None, []))
                    raise DataError(f"{where}: {given} fields where the header has {len(columns)}")
                rows.append((row[cfg.text_field], row.get(cfg.label_field), where))
        except csv.Error as e:
            raise DataError(f"{path}:{reader.line_num}: not valid {path.suffix[1:].upper()} ({e})") from None
    return rows


def _read_text(path: Path) -> list[tuple]:
    # splitlines, not the file's own lines: it is how ose always cut text, and the data's fingerprint
    # depends on it.
    lines = path.read_text(encoding="utf-8-sig", errors="replace").splitlines()
    return [(line.strip(), None, str(path)) for line in lines if line.strip()]  # no label: no line to name


def _read_saved_dataset(path: Path, cfg: ExtractConfig) -> list[tuple]:
    try:
        from datasets import load_from_disk
    except ImportError:
        raise DataError(f"{path}: a saved Hugging Face dataset needs `pip install 'ose[datasets]'`") from None
    ds = load_from_disk(str(path))
    if hasattr(ds, "keys"):  # a DatasetDict: use its "train" split, else the first
        ds = ds["train"] if "train" in ds else ds[next(iter(ds.keys()))]
    if cfg.text_field not in ds.column_names:
        raise DataError(f"{path}: no text field {cfg.text_field!r} (columns: {', '.join(ds.column_names)})")
    labels = ds[cfg.label_field] if cfg.label_field in ds.column_names else [None] * len(ds)
    wheres = (f"{path} row {i}" for i in range(len(ds)))
    return [(_text(t, cfg.text_field, w), l, w) for t, l, w in zip(ds[cfg.text_field], labels, wheres)]


def _read_one(path: Path, cfg: ExtractConfig) -> list[tuple]:
    _check_text(path)
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        with path.open(encoding="utf-8-sig", errors="replace") as f:
            return _read_jsonl(f, str(path), cfg)
    if suffix in TABLE_DELIMITERS:
        return _read_table(path, cfg)
    return _read_text(path)


def _is_saved_dataset(path: Path) -> bool:
    return (path / "dataset_info.json").exists() or (path / "dataset_dict.json").exists()


def source_files(data: str | None) -> list[Path] | None:
    """The files a data folder contributes, in reading order; None for any other source.

    Every file below the folder whose suffix (in any case) is one of ``DATA_SUFFIXES``, except
    those under a hidden name (an editor's or a notebook's copies would be read twice)."""
    if data in (None, EMBEDDED):
        return None
    path = Path(data)
    if not path.is_dir() or _is_saved_dataset(path):
        return None
    return sorted(p for p in path.rglob("*") if p.suffix.lower() in DATA_SUFFIXES and p.is_file()
                  and not any(part.startswith(".") for part in p.relative_to(path).parts))


def describe_source(data: str | None, shown: int = 4) -> str | None:
    """One line naming the files a data folder contributes, None for any other source."""
    files = source_files(data)
    if files is None:
        return None
    names = [p.relative_to(data).as_posix() for p in files[:shown]] + (["…"] if len(files) > shown else [])
    return f"data: {len(files)} file{'s' * (len(files) != 1)} from {data} ({', '.join(names)})"


def _read_rows(cfg: ExtractConfig) -> list[tuple]:
    if cfg.data in (None, EMBEDDED):
        with gzip.open(resources.files("ose.corpora").joinpath("tweets.jsonl.gz").open("rb"), "rt",
                       encoding="utf-8") as f:
            return _read_jsonl(f, "embedded corpus", cfg)
    path = Path(cfg.data)
    if not path.exists():
        raise DataError(f"{path}: no such file or directory")
    if _is_saved_dataset(path):
        return _read_saved_dataset(path, cfg)
    files = source_files(cfg.data)
    if files is None:
        return _read_one(path, cfg)
    if not files:
        raise DataError(f"{path}: folder holds no data files ({', '.join(DATA_SUFFIXES)})")
    return [row for p in files for row in _read_one(p, cfg)]


def read_examples(cfg: ExtractConfig, strict_labels: bool = True) -> list[Example]:
    """Every example of the configured source, in a stable order, each label by its canonical name.

    ``strict_labels`` (a task that learns from labels): a label of the wrong type, or labels of
    mixed kinds, are refused; otherwise such a label is dropped and kinds may mix."""
    source = cfg.data or "embedded corpus"
    rows = [row for row in _read_rows(cfg) if row[0].strip()]
    if not rows:
        raise DataError(f"{source}: no usable text")
    examples = _examples(rows, source, cfg.label_field, strict_labels)
    return spread(examples, cfg.max_examples) if cfg.max_examples else examples


# --- labels -------------------------------------------------------------------------------

def label_name(value, field: str, where: str) -> tuple[str, str] | None:
    """The kind ("text", "number" or "boolean") and canonical name of one label; None for a missing
    one (absent, null, NaN or blank).

    1, 1.0, "1" and "01" name one class, "1"; 0.5 and "0.50" the class "0.5"; JSON's true and
    false the classes "true" and "false" (a string "true" is text)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, bool):
        return "boolean", "true" if value else "false"
    if isinstance(value, numbers.Integral):
        return "number", str(int(value))
    if isinstance(value, numbers.Real):
        if not math.isfinite(value):
            raise DataError(f"{where}: field {field!r} is {value}, not a finite number")
        return "number", _number_name(float(value))
    if isinstance(value, str):
        if not value.strip():
            return None
        if _NUMBER.fullmatch(value.strip()) and math.isfinite(float(value)):
            return "number", _number_name(value.strip())
        return "text", value
    raise DataError(f"{where}: field {field!r} is {_kind_of(value)}, not a label (text, a number or a boolean)")


def _number_name(value: str | float) -> str:
    if isinstance(value, str) and _INTEGER.fullmatch(value):
        return str(int(value))  # exactly, however long: through a float 10**20 + 1 would lose its 1
    f = float(value)
    return str(int(f)) if f.is_integer() else repr(f)


def label_order(names) -> list[str]:
    """Class names in class-index order: numbers by value (labels 0..n-1 are classes 0..n-1: 10
    comes after 9, not after 1), other names in sorted order."""
    names = set(names)
    if names and all(_NUMBER.fullmatch(n) for n in names):
        return sorted(names, key=Decimal)
    return sorted(names)


def _examples(rows: list[tuple], source: str, field: str, strict: bool) -> list[Example]:
    """Rows as examples, their labels named; ``strict``: see ``read_examples``."""
    examples, first = [], {}  # first: the first label of each kind, to show a mix
    for text, value, where in rows:
        try:
            named = label_name(value, field, where)
        except DataError:
            if strict:
                raise
            named = None
        if named is not None:
            first.setdefault(named[0], (value, where))
        examples.append(Example(text, None if named is None else named[1]))
    if strict and len(first) > 1:
        shown = ", ".join(f"{kind} {json.dumps(v, default=str)} ({where})" for kind, (v, where) in first.items())
        raise DataError(f"{source}: labels of mixed kinds: {shown}; give every label as one kind")
    return examples


def spread(examples: list[Example], n: int) -> list[Example]:
    """At most ``n`` examples spread evenly over the source, in their order. Not the first n:
    a source sorted by label (the embedded corpus is) would give a one-label head."""
    total = len(examples)
    if n >= total:
        return examples
    return [examples[i * total // n] for i in range(n)]


def _check_text(path: Path) -> None:
    """Refuse binary files: read with errors="replace", an executable would otherwise become
    thousands of "examples". A few stray invalid bytes in real text are tolerated."""
    with path.open("rb") as f:
        head = f.read(SNIFF_BYTES)
    if b"\0" in head:
        raise DataError(f"{path}: not a text file (binary content: NUL bytes)")
    text = head.decode("utf-8", errors="replace")
    share = len(_NON_TEXT.findall(text)) / max(1, len(head))
    if share > MAX_NON_TEXT:
        raise DataError(f"{path}: not a text file (binary content: {share:.0%} of its first {len(head):,} bytes "
                        f"are neither UTF-8 text nor whitespace)")


def split(examples: list[Example], fraction: float, seed: int) -> tuple[list[Example], list[Example]]:
    """A seeded train / held-out split."""
    g = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(examples), generator=g).tolist()
    n_held = max(1, int(round(len(examples) * fraction)))
    if len(examples) - n_held < 1:
        raise DataError(f"only {len(examples)} examples: too few to split into train and held-out")
    return [examples[i] for i in order[n_held:]], [examples[i] for i in order[:n_held]]


def fingerprint(examples: list[Example]) -> str:
    h = hashlib.sha256()
    for e in examples:
        h.update(e.text.encode())
        h.update(b"\0" + (e.label or "").encode() + b"\n")
    return h.hexdigest()[:16]


# --- tokenizer ----------------------------------------------------------------------------

def cache_dir() -> Path:
    return Path(os.environ.get("OSE_CACHE", Path.home() / ".cache" / "ose"))


def train_wordpiece(texts: list[str], vocab_size: int):
    """A lower-cased BERT WordPiece tokenizer trained locally with ``tokenizers``."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=list(SPECIALS), show_progress=False)
    tok.train_from_iterator(texts, trainer=trainer)
    # The trainer numbers tokens of equal frequency in hash-map order, which changes from
    # process to process; renumber them (specials first, then by text) so that the ids depend
    # only on the set of tokens. (Ties between merges can still change that set; see tests.)
    vocab = tok.get_vocab()
    rest = sorted(t for t in vocab if t not in SPECIALS)
    tok.model = models.WordPiece({t: i for i, t in enumerate([*SPECIALS, *rest])}, unk_token="[UNK]")
    return tok


def shipped_tokenizer(vocab_size: int):
    """The WordPiece tokenizer ose ships for the embedded corpus at this vocabulary size, or None.

    ``tokenizers``' trainer numbers equally frequent symbols in hash-map order, so two fresh
    machines can learn different token sets from the same text; a vocabulary trained once on
    the whole corpus and shipped makes the scratch path the same everywhere.
    """
    from tokenizers import Tokenizer

    name = f"wordpiece-{vocab_size}.json.gz"
    path = resources.files("ose.corpora").joinpath(name)
    if not path.is_file():
        return None
    with gzip.open(path.open("rb"), "rt") as f:
        return Tokenizer.from_str(f.read())


def get_tokenizer(texts: list[str], vocab_size: int, user_dir: str | None, embedded: bool = False):
    """The user's tokenizer; for the embedded corpus the shipped one, where ose has one of this
    size; else a WordPiece one trained on ``texts`` (cached by corpus and size)."""
    from tokenizers import Tokenizer

    if user_dir:
        return _load_user_tokenizer(user_dir, vocab_size)
    shipped = shipped_tokenizer(vocab_size) if embedded else None
    if shipped is not None:
        return shipped
    key = hashlib.sha256(("\n".join(texts)).encode()).hexdigest()[:16]
    path = cache_dir() / "tokenizers" / f"wordpiece-{vocab_size}-{key}.json"
    if path.exists():
        return Tokenizer.from_file(str(path))
    tok = train_wordpiece(texts, vocab_size)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tok.save(str(tmp))
    os.replace(tmp, path)  # atomic: concurrent runs never read half a file
    return tok


@dataclass(frozen=True)
class Specials:
    """The special tokens inputs are built with, by role, as one tokenizer spells them.

    ose's WordPiece has all four ([CLS] … [SEP], [PAD], [MASK]); a decoder's byte-level BPE
    names a begin and an end token in its ``tokenizer_config.json`` (often the same one, as
    SmolLM's ``<|endoftext|>``), and no mask. Texts are joined with ``end``; a block or an
    example starts with ``begin``.
    """

    begin: str | None = "[CLS]"
    end: str | None = "[SEP]"
    pad: str | None = "[PAD]"
    mask: str | None = "[MASK]"

    def id(self, tok, role: str) -> int:
        return tok.token_to_id(getattr(self, role))

    def missing(self, roles: tuple[str, ...]) -> list[str]:
        return [r for r in roles if getattr(self, r) is None]


def read_specials(tok, user_dir: str | None) -> Specials:
    """The roles of ``tok``'s special tokens: WordPiece's names where it has them, else what the
    tokenizer's directory declares (``bos_token``, ``eos_token``, ``pad_token``, ``mask_token``)."""
    def have(name):
        return name if isinstance(name, str) and tok.token_to_id(name) is not None else None

    if have("[CLS]") and have("[SEP]"):
        return Specials(pad=have("[PAD]"), mask=have("[MASK]"))
    declared = {}
    if user_dir:
        folder = Path(user_dir) if Path(user_dir).is_dir() else Path(user_dir).parent
        for name in ("special_tokens_map.json", "tokenizer_config.json"):  # the later one wins, as in transformers
            try:
                declared.update(json.loads((folder / name).read_text()))
            except (OSError, ValueError):
                continue
    role = {k: have(v.get("content") if isinstance(v, dict) else v) for k, v in declared.items()
            if k in ("bos_token", "eos_token", "pad_token", "mask_token")}
    begin, end = role.get("bos_token"), role.get("eos_token")
    return Specials(begin=begin or end, end=end or begin, pad=role.get("pad_token"), mask=role.get("mask_token"))


def own_padding(user_dir: str) -> bool:
    """Whether a saved tokenizer.json pads or truncates by itself (ose switches both off)."""
    path = Path(user_dir)
    try:
        saved = json.loads((path / "tokenizer.json" if path.is_dir() else path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return bool(saved.get("padding") or saved.get("truncation"))


def _load_user_tokenizer(user_dir: str, vocab_size: int):
    from tokenizers import Tokenizer

    path = Path(user_dir)
    file = path / "tokenizer.json" if path.is_dir() else path
    if not file.is_file():
        raise DataError(f"{user_dir}: no tokenizer.json (save a fast tokenizer with save_pretrained)")
    try:
        tok = Tokenizer.from_file(str(file))
    except Exception as e:  # tokenizers raises plain Exceptions on malformed files
        raise DataError(f"{file}: not a tokenizer ({str(e).splitlines()[0]})") from None
    # A saved tokenizer.json may carry its own padding and truncation (all-MiniLM-L6-v2's pads every
    # text to 128 tokens): ose encodes texts as the exported model is served, its own L and batching.
    tok.no_padding()
    tok.no_truncation()
    if tok.get_vocab_size() > vocab_size:
        raise DataError(f"{user_dir}: tokenizer does not fit: its {tok.get_vocab_size()} tokens exceed the "
                        f"space's vocab_size {vocab_size}")
    return tok


# --- one study's data ----------------------------------------------------------------------

def prepare(cfg: ExtractConfig, task, settings, layout: str = "texts", head_config: dict | None = None):
    """Read, check for the task, split, tokenize, encode: (TaskData, tokenizer, identity dict).

    The held-out part holds B, ``eval_batches`` batches of Θ's largest batch size (not its first:
    the order of Θ must not change the study), and the test part, cut as ``layout`` says
    (``tasks.base.LAYOUTS``). ``head_config``: the config of a checkpoint whose own head for the
    task candidates would inherit; the data's labels are then read as its classes, where they fit
    (``data.head_unused`` says why not).
    """
    cfg = cfg.with_defaults()
    examples = read_examples(cfg, strict_labels=task.labelled)
    task.check_examples(examples, cfg.data or "embedded corpus", cfg.label_field)
    files = source_files(cfg.data)
    identity = {"source": cfg.data or EMBEDDED, "examples": len(examples), **({"files": len(files)} if files else {}),
                "fingerprint": fingerprint(examples)}
    classes, unused = None, None
    if head_config is not None:
        examples, classes, unused = task.fit_head(examples, head_config)
    train, heldout = split(examples, cfg.heldout_fraction, cfg.seed)
    tok = get_tokenizer([e.text for e in train], settings.vocab_size, cfg.tokenizer, cfg.data in (None, EMBEDDED))
    specials = read_specials(tok, cfg.tokenizer)
    missing = specials.missing(task.needs)
    if missing:
        raise DataError(f"{cfg.tokenizer}: tokenizer does not fit task {task.name}: it names no "
                        f"{', '.join(ROLE_NAMES[r] for r in missing)} token")
    eval_size = cfg.eval_batches * max(t.batch_size for t in cfg.theta)
    data = task.data(tok, specials, train, heldout, settings, eval_size, cfg.seed, layout,
                     **({"classes": classes} if classes else {}))
    data.head_unused = unused
    data.labelled_examples = sum(e.label is not None for e in examples)
    identity.update(tokenizer=cfg.tokenizer or _tokenizer_name(cfg, settings.vocab_size),
                    tokenizer_vocab=tok.get_vocab_size(), **heldout_facts(data))
    if head_config is not None:
        identity["t_head"] = "used" if unused is None else f"not used: {unused}"
    if cfg.tokenizer and own_padding(cfg.tokenizer):  # studies made before ose switched it off encoded otherwise
        identity["encoding"] = "as served: the padding and truncation saved with the tokenizer switched off"
    if data.label_names:  # class k's name: every config written of the study carries it (id2label)
        identity["labels"] = list(data.label_names)
    if cfg.test_data:
        data.test, digest = _own_test(cfg, task, tok, data, head_config, classes)
        identity["test_data"] = {"source": cfg.test_data, "rows": data.test.rows, "fingerprint": digest}
    if layout != "legacy":  # what a study made before the test part existed did not record
        identity.update(layout=layout, test_rows=data.test.rows if data.test is not None else 0,
                        test_targets=data.test.labels.numel() if data.test is not None else 0)
    return data, tok, identity


def _own_test(cfg: ExtractConfig, task, tok, data, head_config: dict | None, classes: list[str] | None):
    """``--test-data``: the user's test set, read like the data, its labels named as the training
    data's (T's classes where its head is used), encoded as B is; with the examples' fingerprint."""
    import dataclasses

    examples = read_examples(dataclasses.replace(cfg, data=cfg.test_data, max_examples=None),
                             strict_labels=task.labelled)
    digest = fingerprint(examples)
    if task.labelled:
        unlabelled = sum(e.label is None for e in examples)
        if unlabelled:
            raise DataError(f"{cfg.test_data}: {unlabelled} test examples have no label field {cfg.label_field!r}")
        if classes:
            examples, theirs, why = task.fit_head(examples, head_config)
            if theirs != classes:
                raise DataError(f"{cfg.test_data}: T's head cannot read the test labels ({why})")
    try:
        return data.encode_test(tok, examples, cfg.seed), digest
    except DataError as e:
        raise DataError(f"{cfg.test_data}: {e}") from None


def _tokenizer_name(cfg, vocab_size: int) -> str:
    if cfg.data in (None, EMBEDDED) and shipped_tokenizer(vocab_size) is not None:
        return f"embedded-wordpiece-{vocab_size}"  # the shipped one, trained on the whole corpus
    return f"wordpiece-{vocab_size}"


def heldout_facts(data) -> dict:
    """The size of B in targets, and the error of always answering B's most common target: what
    tells a real difference in ê from sampling noise or chance."""
    from collections import Counter

    labels = [t for chunk in data.chunks(256) for t in chunk.labels.tolist()]
    most = max(Counter(labels).values()) if labels else 0
    return {"heldout_targets": len(labels), "majority_error": 1 - most / len(labels) if labels else None}

