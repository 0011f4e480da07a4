"""The loop a user runs on their own fine-tuned classifier: T is their model as given.

    python benchmarks/own_classifier.py --out runs/own      # about 15 minutes on 2 cores

1. Makes "their" classifier: all-MiniLM-L6-v2 with a 2-label head (negative / positive),
   fine-tuned with transformers on half of the embedded tweets' negative and positive texts and
   saved with ``save_pretrained`` (as a user's checkpoint would be).
2. Writes "their" data: the other half, as JSONL with integer labels 0 / 1.
3. Runs ``ose extract --from CLASSIFIER --data DATA.jsonl --epsilon 10 --steps 40`` (no ``--task``:
   it defaults from the checkpoint) and ``ose distil --steps 150``.
4. Prints the card's T (the classifier as given, measured by ose) against the same classifier
   measured here with plain transformers on the same test rows, the pick's accuracy, the label
   names the export answers with, and the speed-up.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

NAMES = {0: "negative", 1: "positive"}


def make_classifier(path: Path, texts: list[str], labels: list[int], steps: int, seed: int = 0) -> None:
    import torch
    from transformers import AutoTokenizer, BertForSequenceClassification

    from ose.pretrained import resolve

    base = resolve("all-MiniLM-L6-v2")
    torch.manual_seed(seed)
    tok = AutoTokenizer.from_pretrained(base)
    model = BertForSequenceClassification.from_pretrained(base, num_labels=2, id2label=NAMES,
                                                          label2id={v: k for k, v in NAMES.items()})
    opt = torch.optim.AdamW(model.parameters(), lr=5e-5)
    order = torch.randperm(len(texts), generator=torch.Generator().manual_seed(seed)).tolist()
    model.train()
    for step in range(steps):
        idx = [order[(step * 32 + i) % len(order)] for i in range(32)]
        batch = tok([texts[i] for i in idx], truncation=True, max_length=64, padding=True, return_tensors="pt")
        loss = model(**batch, labels=torch.tensor([labels[i] for i in idx])).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
        if (step + 1) % 50 == 0:
            print(f"  fine-tuning the user's classifier: step {step + 1}/{steps}, loss {loss.item():.3f}", flush=True)
    model.eval().save_pretrained(path)
    tok.save_pretrained(path)


def as_given_on_test(run: Path, classifier: Path) -> tuple[float, int]:
    """The classifier as saved, loaded with plain transformers, on the study's test rows."""
    import torch
    from transformers import AutoModelForSequenceClassification

    from ose.inputs import reopen
    from ose.store import open_store

    store = open_store(run, readonly=True)
    inputs = reopen(run, store.meta())
    store.close()
    model = AutoModelForSequenceClassification.from_pretrained(classifier).eval()
    test, right = inputs.data.test, 0
    with torch.no_grad():
        for part in test.chunks(64):
            logits = model(input_ids=part.input_ids, attention_mask=part.attention_mask).logits
            right += int((logits.argmax(-1) == part.labels).sum())
    return right / test.rows, test.rows


def ose(*args: str) -> float:
    start = time.perf_counter()
    done = subprocess.run(["ose", *args, "--quiet"], capture_output=True, text=True)
    print(done.stdout.strip())
    if done.returncode:
        sys.exit(f"ose {args[0]} failed: {done.stderr.strip()[-500:]}")
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="runs/own-classifier")
    parser.add_argument("--finetune-steps", type=int, default=200)
    args = parser.parse_args()
    from ose.config import ExtractConfig
    from ose.data import read_examples

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = [(e.text, 0 if e.label == "negative" else 1) for e in read_examples(ExtractConfig())
            if e.label in ("negative", "positive")]
    theirs, ours = rows[::2], rows[1::2]  # the classifier never saw a text of the data ose gets
    classifier, data = out / "my-classifier", out / "data.jsonl"
    if not (classifier / "config.json").is_file():
        start = time.perf_counter()
        make_classifier(classifier, [t for t, _ in theirs], [y for _, y in theirs], args.finetune_steps)
        print(f"fine-tuned the user's classifier in {time.perf_counter() - start:.0f} s")
    data.write_text("".join(json.dumps({"text": t, "label": y}) + "\n" for t, y in ours))
    run = out / "run"
    t_extract = ose("extract", "--from", str(classifier), "--data", str(data), "--epsilon", "10", "--steps", "40",
                    "--out", str(run))
    t_distil = ose("distil", str(run), "--steps", "150")
    card = json.loads((run / "model" / "ose.json").read_text())
    given, n = as_given_on_test(run, classifier)
    from transformers import pipeline

    answer = pipeline("text-classification", model=str(run / "model"))("what a lovely day")[0]["label"]
    m, t = card["model"], card["T"]
    print(f"extract {t_extract:.0f} s, distil {t_distil:.0f} s; task {card['task']}, labels {card['labels']}")
    print(f"the card's T: {t['accuracy']:.4f} [{t['interval_95'][0]:.3f}, {t['interval_95'][1]:.3f}] "
          f"({card['training']['T']}); the classifier as given, with plain transformers on the same {n:,} test "
          f"rows: {given:.4f}")
    print(f"the pick {card['architecture']}: {m['accuracy']:.4f} [{m['interval_95'][0]:.3f}, "
          f"{m['interval_95'][1]:.3f}], {m['accuracy'] / t['accuracy']:.3f} of T's, distilled from "
          f"{card['teacher']}; the export answers {answer!r}")
    lat = card["latency_seconds"]
    print("CPU speed-up over T: " + ", ".join(f"{lat['T'][b] / lat['model'][b]:.1f}× at batch {b}"
                                              for b in lat["model"]))


if __name__ == "__main__":
    main()
