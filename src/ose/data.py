"""Data D: corpora, the train / held-out split, and the tokenizer; the task encodes the rest.

Sources: the embedded tweet corpus (ships with ose), plain-text files or folders, JSONL
with a text field (and a label field for classification), or a Hugging Face ``datasets``
dataset saved with ``save_to_disk``. The train / held-out split is a seeded permutation;
the task (``ose.tasks``) turns both parts into training batches and the fixed held-out
batches B.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import re
from dataclasses import dataclass
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
TEXT_SUFFIXES = (".txt", ".text", ".md")
SNIFF_BYTES = 64 * 1024           # how much of a file decides whether it is text
MAX_NON_TEXT = 0.1                # above this share of non-text bytes, a file is binary
# Invalid UTF-8 (decoded as U+FFFD) and control characters other than whitespace.
_NON_TEXT = re.compile(r"[\x00-\x08\x0e-\x1f\x7f-\x9f\ufffd]")


@dataclass(frozen=True)
class Example:
    text: str
    label: str | None = None


# --- reading ------------------------------------------------------------------------------

def _read_jsonl(lines, source: str, cfg: ExtractConfig) -> list[Example]:
    out = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(f"{source}:{n}: invalid JSON ({e.msg})") from None
        if not isinstance(row, dict) or not isinstance(row.get(cfg.text_field), str):
            raise DataError(f"{source}:{n}: no text field {cfg.text_field!r}")
        label = row.get(cfg.label_field)
        out.append(Example(row[cfg.text_field], None if label is None else str(label)))
    return out


def _read_text(path: Path) -> list[Example]:
    return [Example(line.strip()) for line in path.read_text(errors="replace").splitlines() if line.strip()]


def _read_saved_dataset(path: Path, cfg: ExtractConfig) -> list[Example]:
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
    return [Example(t, None if l is None else str(l)) for t, l in zip(ds[cfg.text_field], labels)]


def read_examples(cfg: ExtractConfig) -> list[Example]:
    """Every example of the configured source, in a stable order."""
    if cfg.data in (None, EMBEDDED):
        with gzip.open(resources.files("ose.corpora").joinpath("tweets.jsonl.gz").open("rb"), "rt") as f:
            examples = _read_jsonl(f, "embedded corpus", cfg)
    else:
        path = Path(cfg.data)
        if not path.exists():
            raise DataError(f"{path}: no such file or directory")
        if (path / "dataset_info.json").exists() or (path / "dataset_dict.json").exists():
            examples = _read_saved_dataset(path, cfg)
        elif path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in (*TEXT_SUFFIXES, ".jsonl"))
            if not files:
                raise DataError(f"{path}: folder holds no .txt or .jsonl files")
            examples = [e for p in files for e in _read_one(p, cfg)]
        else:
            examples = _read_one(path, cfg)
    examples = [e for e in examples if e.text.strip()]
    if not examples:
        raise DataError(f"{cfg.data or 'embedded corpus'}: no usable text")
    return spread(examples, cfg.max_examples) if cfg.max_examples else examples


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


def _read_one(path: Path, cfg: ExtractConfig) -> list[Example]:
    _check_text(path)
    if path.suffix == ".jsonl":
        with path.open(errors="replace") as f:
            return _read_jsonl(f, str(path), cfg)
    return _read_text(path)


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
    examples = read_examples(cfg)
    task.check_examples(examples, cfg.data or "embedded corpus", cfg.label_field)
    identity = {"source": cfg.data or EMBEDDED, "examples": len(examples), "fingerprint": fingerprint(examples)}
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
    identity.update(tokenizer=cfg.tokenizer or _tokenizer_name(cfg, settings.vocab_size),
                    tokenizer_vocab=tok.get_vocab_size(), **heldout_facts(data))
    if head_config is not None:
        identity["t_head"] = "used" if unused is None else f"not used: {unused}"
    if layout != "legacy":  # what a study made before the test part existed did not record
        identity.update(layout=layout, test_rows=data.test.rows if data.test is not None else 0,
                        test_targets=data.test.labels.numel() if data.test is not None else 0)
    return data, tok, identity


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

