"""Data D and held-out batches B: corpora, the tokenizer, and fixed batches per task.

Sources: the embedded tweet corpus (ships with ose), plain-text files or folders, JSONL
with a text field (and a label field for classification), or a Hugging Face ``datasets``
dataset saved with ``save_to_disk``. The train / held-out split is a seeded permutation;
the held-out batches B (and, for MLM, their masks) are fixed by the seed.
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

import torch

from .errors import DataError

EMBEDDED = "embedded:tweets"
SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
TEXT_SUFFIXES = (".txt", ".text", ".md")
SNIFF_BYTES = 64 * 1024           # how much of a file decides whether it is text
MAX_NON_TEXT = 0.1                # above this share of non-text bytes, a file is binary
# Invalid UTF-8 (decoded as U+FFFD) and control characters other than whitespace.
_NON_TEXT = re.compile(r"[\x00-\x08\x0e-\x1f\x7f-\x9f\ufffd]")


@dataclass(frozen=True)
class DataConfig:
    path: str | None = None          # None: the embedded corpus
    text_field: str = "text"
    label_field: str = "label"
    heldout_fraction: float = 0.1
    eval_batches: int = 4            # |B| in batches of prepare()'s batch_size (Θ's largest)
    tokenizer: str | None = None     # a local tokenizer directory; None: train WordPiece
    max_examples: int | None = None


@dataclass(frozen=True)
class Example:
    text: str
    label: str | None = None


# --- reading ------------------------------------------------------------------------------

def _read_jsonl(lines, source: str, cfg: DataConfig) -> list[Example]:
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


def _read_saved_dataset(path: Path, cfg: DataConfig) -> list[Example]:
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


def read_examples(cfg: DataConfig) -> list[Example]:
    """Every example of the configured source, in a stable order."""
    if cfg.path in (None, EMBEDDED):
        with gzip.open(resources.files("ose.corpora").joinpath("tweets.jsonl.gz").open("rb"), "rt") as f:
            examples = _read_jsonl(f, "embedded corpus", cfg)
    else:
        path = Path(cfg.path)
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
        raise DataError(f"{cfg.path or 'embedded corpus'}: no usable text")
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


def _read_one(path: Path, cfg: DataConfig) -> list[Example]:
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


def get_tokenizer(texts: list[str], vocab_size: int, user_dir: str | None):
    """The user's tokenizer, or a WordPiece one trained on ``texts`` (cached by corpus and size)."""
    from tokenizers import Tokenizer

    if user_dir:
        return _load_user_tokenizer(user_dir, vocab_size)
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
    missing = [s for s in SPECIALS if s != "[UNK]" and tok.token_to_id(s) is None]
    if missing:
        raise DataError(f"{user_dir}: tokenizer does not fit: no {', '.join(missing)} token")
    if tok.get_vocab_size() > vocab_size:
        raise DataError(f"{user_dir}: tokenizer does not fit: its {tok.get_vocab_size()} tokens exceed the "
                        f"space's vocab_size {vocab_size}")
    return tok


# --- batches ------------------------------------------------------------------------------

@dataclass
class Batch:
    input_ids: torch.Tensor               # (N, L)
    attention_mask: torch.Tensor          # (N, L)
    labels: torch.Tensor                  # MLM: targets at masked positions (M,); cls: (N,)
    masked: torch.Tensor | None = None    # MLM: bool (N, L), where the loss is taken


class TaskData:
    """Encoded training set and the fixed held-out batches B of one task."""

    task: str
    num_labels: int
    label_names: list[str]
    train_unit: str            # what one training item is, for messages: "examples", "blocks of L tokens"

    def train_size(self) -> int:
        """How many items one epoch of training batches draws from."""
        return len(self.train)

    def train_batches(self, batch_size: int, generator: torch.Generator):
        raise NotImplementedError


class MLMData(TaskData):
    """Masked-language modelling: 15% of positions, 80% [MASK] / 10% random / 10% kept.

    Texts are concatenated and cut into blocks of L tokens ([CLS] … [SEP]).
    """

    task = "mlm"
    label_names: list[str] = []
    num_labels = 0

    def __init__(self, tok, train: list[Example], heldout: list[Example], seq_len: int, eval_size: int,
                 seed: int, vocab_size: int):
        self.ids = {s: tok.token_to_id(s) for s in SPECIALS}
        self.vocab_size = vocab_size
        self.train_unit = f"blocks of {seq_len} tokens"
        self.train = self._blocks(tok, train, seq_len)
        held = self._blocks(tok, heldout, seq_len)
        if len(self.train) < 1 or len(held) < 1:
            raise DataError(f"too little text for blocks of {seq_len} tokens in train and held-out parts")
        g = torch.Generator().manual_seed(seed + 1)
        held = held[torch.randperm(len(held), generator=g)[:eval_size]]
        self.heldout = self.mask(held, g)

    def _blocks(self, tok, examples: list[Example], seq_len: int) -> torch.Tensor:
        stream = []
        for enc in tok.encode_batch([e.text for e in examples], add_special_tokens=False):
            stream.extend(enc.ids)
            stream.append(self.ids["[SEP]"])
        body = seq_len - 1
        n = len(stream) // body
        if n == 0:
            return torch.empty(0, seq_len, dtype=torch.long)
        blocks = torch.tensor(stream[: n * body], dtype=torch.long).view(n, body)
        cls = torch.full((n, 1), self.ids["[CLS]"], dtype=torch.long)
        return torch.cat([cls, blocks], dim=1)

    def mask(self, blocks: torch.Tensor, g: torch.Generator) -> Batch:
        special = (blocks == self.ids["[CLS]"]) | (blocks == self.ids["[SEP]"]) | (blocks == self.ids["[PAD]"])
        masked = (torch.rand(blocks.shape, generator=g) < 0.15) & ~special
        masked[:, 1] |= ~masked.any(dim=1)  # at least one target per block
        inputs = blocks.clone()
        roll = torch.rand(blocks.shape, generator=g)
        inputs[masked & (roll < 0.8)] = self.ids["[MASK]"]
        rand = masked & (roll >= 0.8) & (roll < 0.9)
        inputs[rand] = torch.randint(len(SPECIALS), self.vocab_size, (int(rand.sum()),), generator=g)
        return Batch(inputs, torch.ones_like(inputs), blocks[masked], masked)

    def train_batches(self, batch_size: int, generator: torch.Generator):
        while True:
            for idx in torch.randperm(len(self.train), generator=generator).split(batch_size):
                yield self.mask(self.train[idx], generator)


class ClassificationData(TaskData):
    """Sequence classification: [CLS] text [SEP], truncated to L, padded to the batch."""

    task = "cls"

    def __init__(self, tok, train: list[Example], heldout: list[Example], seq_len: int, eval_size: int,
                 seed: int, label_names: list[str]):
        self.label_names = label_names
        self.num_labels = len(label_names)
        self.train_unit = "examples"
        self.pad = tok.token_to_id("[PAD]")
        self.train = self._encode(tok, train, seq_len)
        g = torch.Generator().manual_seed(seed + 1)
        order = torch.randperm(len(heldout), generator=g)[:eval_size].tolist()
        self.heldout = self.collate([self._encode(tok, [heldout[i]], seq_len)[0] for i in order])

    def _encode(self, tok, examples: list[Example], seq_len: int):
        cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
        index = {name: i for i, name in enumerate(self.label_names)}
        encoded = tok.encode_batch([e.text for e in examples], add_special_tokens=False)
        return [([cls, *enc.ids[: seq_len - 2], sep], index[e.label]) for enc, e in zip(encoded, examples)]

    def collate(self, items) -> Batch:
        width = max(len(ids) for ids, _ in items)
        ids = torch.full((len(items), width), self.pad, dtype=torch.long)
        for row, (seq, _) in enumerate(items):
            ids[row, : len(seq)] = torch.tensor(seq)
        return Batch(ids, (ids != self.pad).long(), torch.tensor([y for _, y in items]))

    def train_batches(self, batch_size: int, generator: torch.Generator):
        while True:
            for idx in torch.randperm(len(self.train), generator=generator).split(batch_size):
                yield self.collate([self.train[i] for i in idx.tolist()])


def prepare(cfg: DataConfig, task: str, vocab_size: int, seq_len: int, batch_size: int, seed: int):
    """Read, split, tokenize: returns (TaskData, tokenizer, identity dict)."""
    examples = read_examples(cfg)
    if task == "cls":
        unlabelled = sum(e.label is None for e in examples)
        if unlabelled:
            raise DataError(f"{cfg.path or 'embedded corpus'}: {unlabelled} examples have no label field "
                            f"{cfg.label_field!r}; classification needs a label for each")
        label_names = sorted({e.label for e in examples})
        if len(label_names) < 2:
            raise DataError(f"{cfg.path or 'embedded corpus'}: classification needs at least 2 labels, "
                            f"found {label_names}")
    train, heldout = split(examples, cfg.heldout_fraction, seed)
    tok = get_tokenizer([e.text for e in train], vocab_size, cfg.tokenizer)
    eval_size = cfg.eval_batches * batch_size
    if task == "mlm":
        data = MLMData(tok, train, heldout, seq_len, eval_size, seed, tok.get_vocab_size())
    else:
        data = ClassificationData(tok, train, heldout, seq_len, eval_size, seed, label_names)
    identity = {"source": cfg.path or EMBEDDED, "examples": len(examples), "fingerprint": fingerprint(examples),
                "tokenizer": cfg.tokenizer or f"wordpiece-{vocab_size}",
                "tokenizer_vocab": tok.get_vocab_size()}
    return data, tok, identity
