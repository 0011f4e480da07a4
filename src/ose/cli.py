"""The ``ose`` command: parses arguments, calls the public API, prints. No logic of its own.

Every user error ends in one line on stderr (``ose: error: ...``) and exit code 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import typing

from . import jsonout
from .errors import ExecutorError, OseError
from .families import FAMILIES, get_family
from .report import counts, table
from .space import load_space, preset_names


class UsageError(OseError):
    """A bad command line, caught after argparse."""


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (no usage dump) and exit code 2."""

    def error(self, message):
        print(f"ose: error: {message}", file=sys.stderr)
        sys.exit(2)


def _arch(tokens: list[str], family: str = "bert") -> dict[str, int]:
    names = get_family(family).parameters
    xi = {}
    for tok in tokens:
        key, sep, value = tok.partition("=")
        if not sep or key not in names:
            elsewhere = [f.name for f in map(get_family, FAMILIES.names()) if key in f.parameters and f.name != family]
            hint = f" (--family {elsewhere[0]} has {key})" if sep and elsewhere else ""
            raise UsageError(f"expected NAME=VALUE with NAME in {', '.join(names)}, got {tok!r}{hint}")
        if key in xi:
            raise UsageError(f"{key} is given twice ({key}={xi[key]} and {tok})")
        try:
            xi[key] = int(value)
        except ValueError:
            raise UsageError(f"{key} must be an integer, got {value!r}") from None
    missing = [n for n in names if n not in xi]
    if missing:
        raise UsageError(f"missing {', '.join(missing)} (an architecture needs {', '.join(names)})")
    return {n: xi[n] for n in names}


def cmd_space(args) -> int:
    if args.source:
        from .pretrained import load_source, space_for

        space = space_for(load_source(args.source), args.space)
    elif args.space:
        space = load_space(args.space)
    else:
        raise UsageError("name a space (a preset or a TOML file), or --from MODEL")
    for note in space.notes:  # on stderr: the table, CSV or JSON on stdout stays data only
        print(note, file=sys.stderr)
    from . import budgets

    from .grid import table as ordered

    chosen = [b for b in (budgets.parse("params", args.max_params), budgets.parse("ops", args.max_ops),
                          budgets.parse("latency", args.max_latency)) if b]
    if args.max_latency is None and (args.latency_file or args.latency_batch is not None):
        raise UsageError("--latency-file and --latency-batch are for --max-latency")
    if args.latency_batch is not None and args.latency_batch < 1:
        raise UsageError(f"--latency-batch must be a positive batch size, got {args.latency_batch}")
    timings = _space_timings(args, space) if args.max_latency is not None else None
    everything = ordered(space, args.sort)
    kept = budgets.feasible(everything, chosen, space.max_cost, timings)
    if chosen:
        print(budgets.summary(everything, kept, chosen, space.max_cost, timings), file=sys.stderr)
    if args.format == "json":
        doc = counts.space_document(space, args.sort, list(kept))
        if chosen:
            top = budgets.t_values(space.max_cost, timings)  # latency in ms
            doc["budgets"] = {b.kind: {"given": b.text, "limit": b.limit(top[b.kind])} for b in chosen}
        print(jsonout.dumps(doc, indent=2))
        return 0
    cut = args.format == "table" and not args.all and len(kept) > SHOWN_WHOLE
    shown = [*kept[:SHOWN_ENDS], *kept[-SHOWN_ENDS:]] if cut else list(kept)
    rows = counts.space_rows(space, args.sort, shown)
    if args.format == "table":
        t = space.maximum_point
        print(f"# {space.name}: {len(kept):,} architectures, T = {t} "
              f"(p={space.max_cost.params:,}, i={space.max_cost.ops:,}), {counts.SORT_NAMES[args.sort]}")
    lines = table.render(rows, args.format).splitlines()
    if cut:  # the header, the cheapest, a gap, the largest
        head = len(lines) - len(rows)
        lines = [*lines[:head + SHOWN_ENDS], f"... {len(kept) - 2 * SHOWN_ENDS:,} more (--all shows every one) ...",
                 *lines[head + SHOWN_ENDS:]]
    print("\n".join(lines))
    if args.format == "table":  # CSV stays data only
        print(counts.abnc_line(space.abnc()))
    return 0


def _space_timings(args, space) -> dict:
    """``ose space --max-latency``: the latency table of ``--latency-file``, or every ξ and T timed
    now on this machine (progress on stderr), as ``ose extract --max-latency`` measures it."""
    from .config import ExtractConfig
    from .context import timings

    config = None
    if args.source:
        from .pretrained import load_source

        config = load_source(args.source).config
    elif not args.latency_file:
        print(f"timing {len(space.architectures()):,} architectures and T at batch {args.latency_batch or 1} "
              f"(--latency-file reuses a table from `ose latency`)", file=sys.stderr)
    if args.runtime == "onnxruntime":
        from .runtime import require

        require()
    return timings(space, args.latency_file, args.latency_batch or 1, ExtractConfig(threads=args.threads)
                   .resolved_threads(), config, progress=not args.latency_file, runtime=args.runtime)


def _checkpoint_check(source, xi: dict, cost, head: str) -> dict:
    """p of the parts a checkpoint holds against its tensors' element count: A and B against its
    embeddings and layers, C (the head its config names) against that head's tensors."""
    from .pretrained import checkpoint_params

    held = checkpoint_params(source, head)
    counted = cost.parts["A"].params + cost.parts["B"].params
    is_t = xi == source.xi
    return {"path": source.path, "weights": source.weights, "tensor_elements_embeddings_and_layers": held["body"],
            "tensor_elements_head": held["head"], "tensor_elements_other": held["rest"], "counted_A_plus_B": counted,
            "head": head, "counted_C": cost.parts["C"].params,
            "matches": held["body"] == counted and held["head"] == cost.parts["C"].params if is_t else None,
            "inherited_heads": sorted(source.heads)}


def _boolean(text: str) -> bool:
    """``true``/``false`` (also yes/no, 1/0) for a boolean setting; bool("false") would be True."""
    value = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}.get(text.lower())
    if value is None:
        raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")
    return value


def _settings_fields() -> dict[str, type]:
    """Every registered family's settings fields, by name, with their types (for ``ose count``'s flags)."""
    from .families import FAMILIES

    out = {}
    for name in FAMILIES.names():
        settings = FAMILIES.get(name).settings_type
        hints = typing.get_type_hints(settings)
        out.update({f.name: hints[f.name] for f in dataclasses.fields(settings)})
    return out


def _count_settings(args, family) -> dict:
    """The settings flags given, each checked against the family's own settings."""
    own = {f.name for f in dataclasses.fields(family.settings_type)}
    given = {name: getattr(args, name) for name in _settings_fields() if getattr(args, name) is not None}
    for name in given:
        if name not in own:
            raise UsageError(f"family {family.name} has no setting --{name.replace('_', '-')} "
                             f"(its settings: {', '.join(sorted(own))})")
    return given


def cmd_count(args) -> int:
    from . import count

    source = None
    if args.source:
        from .pretrained import load_source

        source = load_source(args.source)
        args.family = source.family
    try:
        family = get_family(args.family)
    except KeyError as e:
        raise UsageError(e.args[0]) from None
    given = _count_settings(args, family)
    if source is not None:  # T's own vocabulary and positions, whatever the flags say; L as --from's grid has it
        from .pretrained import DEFAULT_SEQ_LEN

        given.update(source.settings)
        given.setdefault("seq_len", min(DEFAULT_SEQ_LEN, given["max_positions"]))
    xi = _arch(args.arch, family.name) if args.arch else dict(source.xi) if source else None
    if xi is None:
        raise UsageError("give an architecture (NAME=VALUE ...) or --from MODEL")
    vs = _arch(args.vs, family.name) if args.vs else None
    try:
        settings = dataclasses.asdict(family.settings_type(**given))
        cost = count(xi, family.name, **settings)
        vs_cost = count(vs, family.name, **settings) if vs else None
    except ValueError as e:
        raise UsageError(str(e)) from None
    doc = {"family": family.name, "settings": settings, **counts.count_document(xi, cost, vs, vs_cost)}
    if source is not None:
        doc["checkpoint"] = _checkpoint_check(source, xi, cost, settings["head"])
    if args.format == "json":
        print(jsonout.dumps(doc, indent=2))
        return 0
    rows = [{"part": p, **{k: v for k, v in d.items() if k != "ops"}, "ops": d["ops"]}
            for p, d in [*doc["parts"].items(), ("total", {k: doc[k] for k in counts.RATIO_KEYS})]]
    print(f"# {family.name} {xi}  ({', '.join(f'{k}={v}' for k, v in settings.items())})")
    print(table.text_table(rows))
    if source is not None:
        c = doc["checkpoint"]
        verdict = {True: "equal", False: "DIFFERENT", None: "(ξ is not T)"}[c["matches"]]
        print(f"# checkpoint {c['weights']}: {c['tensor_elements_embeddings_and_layers']:,} elements in embeddings "
              f"and layers, p(A) + p(B) = {c['counted_A_plus_B']:,}; {c['tensor_elements_head']:,} in its "
              f"{c['head']} head, p(C) = {c['counted_C']:,}: {verdict}; {c['tensor_elements_other']:,} elements "
              f"elsewhere (another head's, a pooler); heads candidates inherit: {', '.join(c['inherited_heads']) or 'none'}")
    if vs:
        print(f"\n# ratios to {vs}")
        print(table.text_table([doc["ratios"]]))
    return 0


def _theta(text: str) -> dict:
    """``lr=0.05,momentum=0.9,batch_size=32[,optimizer=adamw]`` → a θ dict."""
    out = {}
    for item in text.split(","):
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or key not in ("lr", "momentum", "batch_size", "optimizer"):
            raise UsageError(f"--theta expects lr=X,momentum=Y,batch_size=N[,optimizer=sgd|adamw], got {text!r}")
        if key == "optimizer":
            out[key] = value.strip()
            continue
        try:
            out[key] = int(value) if key == "batch_size" else float(value)
        except ValueError:
            raise UsageError(f"--theta {key} must be a number, got {value!r}") from None
    return out


def cmd_extract(args) -> int:
    from .pipeline import extract

    options = _extract_options(args)
    return _outcome(extract(args.config, progress=not args.quiet, new_study=args.new_study, **options))


def _outcome(result) -> int:
    """0 if the search picked an architecture; 1 if every evaluation failed (the reasons are in the summary)."""
    if result.best is not None:
        return 0
    print(f"ose: no evaluation finished: all {len(result.evaluations)} failed (reasons above and in "
          f"{result.out / 'results.json'})", file=sys.stderr)
    return 1


def _study_dir(path: str):
    from pathlib import Path

    from .store import STUDY_FILE

    out = Path(path)
    if not (out / STUDY_FILE).is_file():
        raise UsageError(f"{out}: no study here (no {STUDY_FILE})")
    return out


def cmd_report(args) -> int:
    from .report import outputs, results

    try:
        doc, files = outputs.rebuild(_study_dir(args.out), [_study_dir(c) for c in args.compare or []])
    except ValueError as e:
        raise UsageError(f"{args.out}: {e}") from None
    print(results.summary(doc))
    for f in files:
        print(f"wrote {f}")
    return 0


def cmd_status(args) -> int:
    from .estimate import duration
    from .study import status

    st = status(_study_dir(args.out))
    if args.format == "json":
        print(jsonout.dumps(st, indent=2))
        return 0
    best = f"{st['best_w']:.4g} at {st['best']}" if st["best"] else "none yet"
    running = f"running ({st['running']})" if st["running"] else "not running"
    print(f"{st['study']}: {st['done']} done, {st['failed']} failed, {st['remaining']} remaining of "
          f"{st['total']}; {running}")
    print(f"best W so far: {best}")
    print(f"elapsed {duration(st['elapsed_s'])}, estimated remaining {duration(st['eta_s'])}")
    return 0


def cmd_distil(args) -> int:
    """Train the study's pick (distilled from T when it is pretrained) and export it as a model."""
    from .distil import distil
    from .export import size_text

    if args.save_every < 1:
        raise UsageError(f"--save-every must be a positive integer, got {args.save_every}")
    _check_deploy_flags(args)
    if args.keep is not None:
        return _distil_keep(args)
    r = distil(args.run_dir, steps=args.steps, out=args.out, save_every=args.save_every, log=print,
               progress=not args.quiet, partial=args.partial, force=args.force, restart=args.restart,
               pick=args.pick)
    test = r.card["test"]
    which = "as given" if r.teacher and r.teacher.stop is None else "fine-tuned"
    t = f" (T {which}: {r.teacher_accuracy:.4f}, {r.accuracy / r.teacher_accuracy:.3f} of T's)" \
        if r.teacher_accuracy is not None else ""
    print(f"test accuracy {r.accuracy:.4f}{t} on {size_text(test)} nothing was selected on; CPU speed-up over T: "
          + ", ".join(
              f"{r.latency['T'][b] / r.latency['model'][b]:.2f}× at batch {b}" for b in r.latency["model"]))
    print(f"wrote {r.out} (config.json, model.safetensors, tokenizer, README.md, ose.json)")
    _deploy(r.out, args, args.run_dir)
    return 0


def _deploy_flags(p) -> None:
    p.add_argument("--onnx", action="store_true",
                   help="also write model.onnx (ONNX Runtime, Optimum's layout), checked against PyTorch on the test "
                        "part and timed beside it (pip install -e '.[onnx]')")
    p.add_argument("--quantize", choices=["int8"],
                   help="also write model_quantized.onnx by ONNX Runtime's dynamic int8 quantization")


def _check_deploy_flags(args) -> None:
    """Before any training: the runtime is there, and --quantize has a graph to start from."""
    from .runtime import require

    if args.onnx or args.quantize:
        require()
    if args.quantize and not args.onnx and args.command == "distil":
        raise UsageError("--quantize int8 quantizes the ONNX graph; add --onnx")


def _deploy(model_dir, args, run_dir=None) -> None:
    from .deploy import deploy

    if not (args.onnx or args.quantize):
        return
    # ose distil has just written the weights (and checked the folder): a graph there is of older ones
    force = args.force or args.command == "distil"
    out = deploy(model_dir, run_dir, onnx=args.onnx, quantize_int8=args.quantize == "int8", force=force, log=print)
    print(deploy_summary(out))


def deploy_summary(out: dict) -> str:
    """The latency table and accuracies ``ose export`` prints."""
    lat = out["latency_seconds"]
    runtimes = list(lat["model"])
    lines = [f"test accuracy: PyTorch {out['pytorch']['accuracy']:.4f}, ONNX fp32 {out['fp32']['accuracy']:.4f}"
             + (f", int8 {out['int8']['accuracy']:.4f}" if "int8" in out else "")
             + f" (largest logit difference fp32 vs PyTorch {out['max_abs_diff']:.2g})",
             "ms per forward pass (1 thread, median of alternating rounds): " + " | ".join(runtimes)]
    for who in ("model", "T"):
        for b in lat[who][runtimes[0]]:
            lines.append(f"  {who:5} batch {b:>2}: " + " | ".join(f"{1000 * lat[who][r][b]:.3g}" for r in runtimes))
    base = lat["T"]["PyTorch fp32"]
    best = runtimes[-1]
    lines.append(f"speed-up of the model in {best} over T in PyTorch fp32: "
                 + ", ".join(f"{base[b] / lat['model'][best][b]:.1f}× at batch {b}" for b in base)
                 + "; over the model in PyTorch fp32: "
                 + ", ".join(f"{lat['model']['PyTorch fp32'][b] / lat['model'][best][b]:.2f}× at batch {b}"
                             for b in base))
    return "\n".join(lines)


def cmd_export(args) -> int:
    """ONNX (and int8) of an exported model, checked on its study's test part and timed."""
    _check_deploy_flags(args)
    if not (args.onnx or args.quantize):
        raise UsageError("say what to export: --onnx, and --quantize int8 for the int8 model")
    _deploy(args.model_dir, args, args.run)
    print(f"wrote {args.model_dir}: model.onnx" + (", model_quantized.onnx" if args.quantize else "")
          + "; ose.json and README.md updated")
    return 0


def _distil_keep(args) -> int:
    """``ose distil --keep F``: exit 0 with the cheapest model verified at F of T's test accuracy, 1 if none is."""
    from .distil import distil_keep

    if args.pick is not None:
        raise UsageError("--keep chooses the candidates itself; leave --pick out")
    if args.out is not None:
        raise UsageError("--keep writes each candidate to its own folder of RUN_DIR; leave --out out")
    k = distil_keep(args.run_dir, args.keep, steps=args.steps, save_every=args.save_every, log=print,
                    progress=not args.quiet, partial=args.partial, force=args.force)
    if k.verified is not None:
        r = k.verified
        speed = ", ".join(f"{r.latency['T'][b] / r.latency['model'][b]:.2f}× at batch {b}" for b in r.latency["model"])
        print(f"verified: {r.out} keeps {r.accuracy / r.teacher_accuracy:.3f} of T's test accuracy ({r.accuracy:.4f} "
              f"against {r.teacher_accuracy:.4f}, floor {k.floor:g}) after {len(k.tried)} distillation(s); CPU "
              f"speed-up over T: {speed}")
        _deploy(r.out, args, args.run_dir)  # the verified model only: it is the one served
        return 0
    arch, best = max(k.tried, key=lambda t: t[1].accuracy)
    print(f"ose: no candidate kept {k.floor:g} of T's test accuracy ({len(k.tried)} distilled); the best, {best.out}, "
          f"kept {best.accuracy / best.teacher_accuracy:.3f}", file=sys.stderr)
    return 1


def cmd_latency(args) -> int:
    """Time every architecture of a space and T; write OUT/latency.json; print the table and ρ."""
    from pathlib import Path

    from . import latency

    options = {"batch_sizes": args.batch_sizes or latency.BATCH_SIZES}
    for name, default in (("repeats", latency.REPEATS), ("warmup", latency.WARMUP), ("threads", latency.THREADS)):
        options[name] = default if getattr(args, name) is None else getattr(args, name)
    problem = latency.check_options(**options)
    if problem:
        raise UsageError(problem)
    space = load_space(args.space)
    try:  # before measuring: a bad --out should not cost a minute of timing first
        Path(args.out).mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(f"--out {args.out}: cannot create the directory ({e.strerror or e})") from None
    if args.runtime == "onnxruntime":
        from .runtime import require

        require()
    doc = latency.measure_space(space, **options, progress=not args.quiet, runtime=args.runtime)
    path = latency.save(Path(args.out) / latency.LATENCY_FILE, doc)
    print(jsonout.dumps(doc, indent=2) if args.format == "json" else latency.summary(doc))
    print(f"wrote {path}", file=sys.stderr if args.format == "json" else sys.stdout)
    return 0


def cmd_groundtruth(args) -> int:
    """Exhaustive search with k × s steps: the "true" ê and W of every ξ, and the optimum W*."""
    from .config import load_config
    from .pipeline import extract

    if args.factor < 1:
        raise UsageError(f"--factor must be a positive integer, got {args.factor}")
    if args.budget is not None:
        raise UsageError("--budget does not apply to groundtruth, which trains every architecture of Ξ")
    options = {k: v for k, v in _extract_options(args).items() if v is not None}
    cfg = load_config(args.config)
    if cfg.budget is not None:  # meant for the config's own strategy, not for this exhaustive run
        print(f"note: groundtruth trains every architecture of Ξ; the budget of {cfg.budget} in {args.config} "
              f"is ignored")
        cfg = dataclasses.replace(cfg, budget=None)
    steps = options.get("steps") or dataclasses.replace(cfg, **options).with_defaults().steps
    options.update(strategy="exhaustive", steps=args.factor * steps, epsilon=1)
    return _outcome(extract(cfg, progress=not args.quiet, new_study=args.new_study, **options))


def _add_extract(sub) -> None:
    e = sub.add_parser("extract", help="run Algorithm 1: train one candidate per ε-interval, pick argmax W")
    _extract_flags(e)
    e.set_defaults(func=cmd_extract)
    g = sub.add_parser("groundtruth", help="train every architecture for k × s steps: the true ê, W and W*")
    _extract_flags(g)
    g.add_argument("--factor", type=int, default=10, help="k: the long budget is k × s steps (default 10)")
    g.set_defaults(func=cmd_groundtruth)


def _extract_flags(e) -> None:
    """One flag per field of ExtractConfig that has one, with the field's help and choices."""
    from .config import ExtractConfig, choices_of

    e.add_argument("--config", help="a TOML file holding any of the options below; flags override it")
    hints = typing.get_type_hints(ExtractConfig)
    for f in dataclasses.fields(ExtractConfig):
        if not f.metadata.get("flag", True):
            continue
        meta = f.metadata
        flag = f"--{meta['flag'] if isinstance(meta['flag'], str) else f.name.replace('_', '-')}"
        if f.name == "theta":
            e.add_argument(flag, action="append", metavar=meta["metavar"], help=meta["help"])
            continue
        kind = next(t for t in typing.get_args(hints[f.name]) or (hints[f.name],) if t is not type(None))
        if kind is bool:  # a switch; None when absent, so a config file's value stands
            e.add_argument(flag, dest=f.name, action="store_true", default=None, help=meta["help"])
            continue
        e.add_argument(flag, dest=f.name, type=kind, choices=choices_of(f), metavar=meta["metavar"],
                       help=meta["help"])
    e.add_argument("--quiet", action="store_true", help="no progress bars")
    e.add_argument("--new-study", action="store_true",
                   help="if --out holds a study with another configuration, set it aside and start anew")


def _extract_options(args) -> dict:
    """The ExtractConfig fields given on the command line (flags not given stay None)."""
    from .config import ExtractConfig

    options = {f.name: getattr(args, f.name) for f in dataclasses.fields(ExtractConfig)
               if f.metadata.get("flag", True) and f.name != "theta"}
    if args.theta:
        options["theta"] = [_theta(t) for t in args.theta]
    return options


SHOWN_WHOLE, SHOWN_ENDS = 1000, 20  # ose space: a larger space's table shows its two ends
STEPS = 300  # ose distil's cap (ose.distil.STEPS; not imported here: it would import torch)


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="ose", description="Optimal Subarchitecture Extraction (de Wynter, 2020)")
    sub = p.add_subparsers(dest="command", required=True, parser_class=Parser)
    _add_extract(sub)
    r = sub.add_parser("report", help="rebuild every output of a study from its store, without training")
    r.add_argument("out", help="the study's output directory")
    r.add_argument("--compare", nargs="+", metavar="DIR",
                   help="other studies of the space (e.g. --init scratch): ê against p by init mode")
    r.set_defaults(func=cmd_report)

    st = sub.add_parser("status", help="progress of a study (read-only; works while it runs)")
    st.add_argument("out", help="the study's output directory")
    st.add_argument("--format", choices=["text", "json"], default="text")
    st.set_defaults(func=cmd_status)

    s = sub.add_parser("space", help="every architecture of a search space with p, i and ratios to T")
    s.add_argument("space", nargs="?", help=f"a preset ({', '.join(preset_names())}) or a TOML file")
    s.add_argument("--max-params", metavar="N|P%", help="only the architectures of at most N parameters, or P%% of T's")
    s.add_argument("--max-ops", metavar="N|P%", help="only the architectures of at most N operations, or P%% of T's")
    s.add_argument("--max-latency", metavar="MS|P%", help="only the architectures whose forward pass takes at most MS "
                   "milliseconds, or P%% of T's, measured now on this machine (or read from --latency-file)")
    s.add_argument("--latency-batch", type=int, help="the batch size --max-latency times (default 1)")
    s.add_argument("--runtime", choices=["torch", "onnxruntime"], default="torch",
                   help="--max-latency timed in PyTorch eager fp32 (default) or ONNX Runtime (fp32 graphs)")
    s.add_argument("--latency-file", metavar="FILE", help="a latency.json from `ose latency` or a study, instead of "
                   "timing now")
    s.add_argument("--threads", type=int, help="torch threads while timing (default: every core, as ose extract)")
    s.add_argument("--from", dest="source", metavar="MODEL",
                   help="T from a pretrained checkpoint: its default grid below T, or SPACE's grid narrowed to it")
    s.add_argument("--format", choices=["table", "csv", "json"], default="table")
    s.add_argument("--all", action="store_true", help=f"every row of the table (by default a space of more than "
                   f"{SHOWN_WHOLE:,} architectures shows its {SHOWN_ENDS} first and {SHOWN_ENDS} last; CSV and "
                   f"JSON always hold all)")
    s.add_argument("--sort", choices=["intermediate", "total"], default="intermediate",
                   help="by the layers B's p, then i (default, Algorithm 1's order), or by the whole network's")
    s.set_defaults(func=cmd_space)

    d = sub.add_parser("distil", help="train a study's pick (distilled from T) and export it as a Hugging Face model")
    d.add_argument("run_dir", help="the output directory of an ose extract")
    d.add_argument("--steps", type=int, default=STEPS,
                   help=f"at most this many steps for the pick, and for T's fine-tune; each stops earlier once its "
                        f"validation accuracy stops improving (default {STEPS})")
    d.add_argument("--out", help="where the model goes (default RUN_DIR/model)")
    d.add_argument("--save-every", type=int, default=25, help="steps between saved states, to resume from (default 25)")
    d.add_argument("--quiet", action="store_true", help="no progress lines")
    d.add_argument("--partial", action="store_true",
                   help="distil an unfinished study's best so far (the card says so); refused without it")
    d.add_argument("--force", action="store_true",
                   help="write over an --out folder holding files ose did not write, or another export")
    d.add_argument("--restart", action="store_true",
                   help="train again from the start, not from this distillation's saved state")
    d.add_argument("--keep", type=float, metavar="F",
                   help="distil the pick, then the next-cheapest candidates predicted to keep F of T's accuracy, "
                        "until one is verified on the test part (exit 0) or none is left (exit 1)")
    d.add_argument("--pick", metavar="RANK|D=..,A=..",
                   help="distil another stored candidate than the search's pick: its rank by W in the summary, "
                        "or its architecture (default out RUN_DIR/model-D2-A6-...)")
    _deploy_flags(d)
    d.set_defaults(func=cmd_distil)

    x = sub.add_parser("export", help="an exported model as an ONNX graph (and int8), checked and timed in ONNX "
                                      "Runtime beside PyTorch")
    x.add_argument("model_dir", help="a model folder ose distil wrote (RUN_DIR/model)")
    x.add_argument("--run", help="the study that made it, for its test part (default: MODEL_DIR's parent)")
    x.add_argument("--force", action="store_true", help="replace a graph there of other weights")
    _deploy_flags(x)
    x.set_defaults(func=cmd_export)

    lt = sub.add_parser("latency", help="measured forward-pass latency of every architecture and T, vs the op count")
    lt.add_argument("space", help=f"a preset ({', '.join(preset_names())}) or a TOML file")
    lt.add_argument("--out", default="runs/latency", help="directory for latency.json (default runs/latency)")
    lt.add_argument("--batch-sizes", type=int, nargs="+", metavar="N", help="batch sizes to time (default 1 32)")
    lt.add_argument("--repeats", type=int, help="timed passes per measurement, median kept (default 10)")
    lt.add_argument("--warmup", type=int, help="untimed passes before timing (default 3)")
    lt.add_argument("--threads", type=int, help="torch threads while timing (default 1)")
    lt.add_argument("--runtime", choices=["torch", "onnxruntime"], default="torch",
                    help="time PyTorch eager fp32 (default) or each model's fp32 ONNX graph in ONNX Runtime")
    lt.add_argument("--format", choices=["table", "json"], default="table")
    lt.add_argument("--quiet", action="store_true", help="no progress bar")
    lt.set_defaults(func=cmd_latency)

    c = sub.add_parser("count", help="closed-form p and i of one architecture, e.g. D=4 A=8 H=1024 I=768")
    c.add_argument("arch", nargs="*", metavar="NAME=VALUE")
    c.add_argument("--from", dest="source", metavar="MODEL",
                   help="T from a pretrained checkpoint: its counts, checked against the weights' element count")
    c.add_argument("--vs", nargs="+", metavar="NAME=VALUE", help="a second architecture to compare against")
    c.add_argument("--family", default="bert", help="the architecture family (default bert)")
    for name, kind in _settings_fields().items():  # every family's settings, each checked against the family's
        c.add_argument(f"--{name.replace('_', '-')}", type=_boolean if kind is bool else kind,
                       help=f"setting {name} (default: the family's)")
    c.add_argument("--format", choices=["table", "json"], default="table")
    c.set_defaults(func=cmd_count)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except OseError as e:
        print(f"ose: error: {e}", file=sys.stderr)
        return 2
    except ExecutorError as e:
        print(f"ose: error: {e}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # output piped into head and closed early
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print("ose: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
