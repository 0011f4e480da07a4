"""ose's candidate training against a minimal hand-written PyTorch loop, in one process.

    python benchmarks/train_loop.py [--steps N] [--repeats R] [--bf16-steps N] [--threads T]

(a) ``ose.train.train`` on a TaskData from ``ose.data.prepare`` (the embedded corpus, MLM);
(b) a minimal loop: plain SGD with momentum, the same model built the same way from the same
seed, the same batches (drawn beforehand from the same seeded generator, so the masking is
outside its timing), vocabulary logits only at masked positions, the same weight clipping.
(a) and (b) alternate, ``--repeats`` times each; tokens/second counts every position of every
training block (steps × batch × L) over the training steps only: ose is timed from the call to
its last step's progress callback, so its final evaluation on B is left out (printed apart).

In the same run: (c) the gain of computing logits only at masked positions over the stock
``BertForMaskedLM`` forward (logits at all positions, labels −100 elsewhere), and (d) fp32
against bf16 autocast on this CPU (without native bf16 units bf16 is expected slower), both
in the minimal loop. The whole script takes about two minutes on 2 cores with the defaults.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch
import torch.nn.functional as F

from ose.data import prepare
from ose.families import get_family
from ose.config import ExtractConfig, Theta
from ose.tasks import get_task
from ose.train import train


def build(args, seed: int):
    bert = get_family("bert")
    settings = bert.settings_type(vocab_size=args.vocab, max_positions=args.seq_len, seq_len=args.seq_len,
                                  head="mlm")
    torch.manual_seed(seed)
    return bert.build({"D": args.D, "A": args.A, "H": args.H, "I": args.I}, settings, head="masked-lm")


def run_ose(args, data, theta, seed: int) -> tuple[list[float], float, float]:
    """(the time at the start and after each step, seconds of the whole call, final smoothed loss)."""
    model = build(args, seed)
    cfg = ExtractConfig(steps=args.steps, clip=args.clip, precision="fp32", device="cpu", seed=seed,
                        threads=torch.get_num_threads())
    start = time.perf_counter()
    times = [start]
    result = train(model, get_family("bert"), get_task("mlm"), data, theta, cfg,
                   progress=lambda step, loss: times.append(time.perf_counter()))
    return times, time.perf_counter() - start, result.train_loss


def run_minimal(args, batches, theta, seed: int, mode: str = "masked", bf16: bool = False):
    """(the time at the start and after each step, final smoothed loss) of the hand-written loop.

    ``mode``: ``masked`` (logits at masked positions only) or ``full`` (stock forward with
    labels, logits at every position).
    """
    model = build(args, seed)
    times = [time.perf_counter()]
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=theta.lr, momentum=theta.momentum)
    ema = None
    for b in batches:
        with torch.autocast("cpu", torch.bfloat16, enabled=bf16):
            if mode == "masked":
                hidden = model.bert(input_ids=b.input_ids, attention_mask=b.attention_mask).last_hidden_state
                loss = F.cross_entropy(model.cls(hidden[b.positions]).float(), b.labels)
            else:
                loss = model(input_ids=b.input_ids, attention_mask=b.attention_mask, labels=b.full_labels).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if args.clip:
            with torch.no_grad():
                torch._foreach_clamp_min_(params, -args.clip)
                torch._foreach_clamp_max_(params, args.clip)
        value = loss.item()
        ema = value if ema is None else 0.9 * ema + 0.1 * value
        times.append(time.perf_counter())
    return times, ema


def throughput(args, times: list[float]) -> tuple[float, float]:
    """Tokens/second (over the whole run, at the median step): the median step is robust to a
    neighbour's load on a shared machine; the whole run also counts per-call overhead."""
    steps = [b - a for a, b in zip(times, times[1:])]
    tokens = args.batch * args.seq_len
    return len(steps) * tokens / (times[-1] - times[0]), tokens / statistics.median(steps)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=30, help="SGD steps per timed run")
    ap.add_argument("--repeats", type=int, default=3, help="timed runs of each of (a) and (b), alternating")
    ap.add_argument("--full-repeats", type=int, default=2, help="timed runs of the stock all-positions forward")
    ap.add_argument("--bf16-steps", type=int, default=5, help="steps of the bf16 autocast run (slow on AVX2)")
    ap.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--seq-len", type=int, default=64)
    ap.add_argument("--vocab", type=int, default=4096)
    ap.add_argument("--max-examples", type=int, default=8000)
    ap.add_argument("--clip", type=float, default=1.0)
    ap.add_argument("--D", type=int, default=2)
    ap.add_argument("--A", type=int, default=4)
    ap.add_argument("--H", type=int, default=128)
    ap.add_argument("--I", type=int, default=512)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    seed, theta = 0, Theta(lr=0.05, momentum=0.9, batch_size=args.batch)

    t = time.perf_counter()
    settings = get_family("bert").settings_type(vocab_size=args.vocab, max_positions=args.seq_len,
                                                seq_len=args.seq_len, head="mlm")
    cfg = ExtractConfig(max_examples=args.max_examples, eval_batches=1, seed=seed, theta=[Theta(batch_size=args.batch)])
    data, _, identity = prepare(cfg, get_task("mlm"), settings)
    prep = time.perf_counter() - t
    gen = data.train_batches(args.batch, torch.Generator().manual_seed(seed))  # the stream ose.train draws
    batches = [next(gen) for _ in range(args.steps)]
    for b in batches:
        b.full_labels = torch.full_like(b.input_ids, -100)
        b.full_labels[b.positions] = b.labels
    masked = sum(int(b.positions.sum()) for b in batches) / (args.steps * args.batch * args.seq_len)
    print(f"torch {torch.__version__}, CPU capability {torch.backends.cpu.get_cpu_capability()}, "
          f"{args.threads} thread(s)")
    print(f"model D={args.D} A={args.A} H={args.H} I={args.I}, vocab {args.vocab}, L={args.seq_len}, "
          f"batch {args.batch}, {args.steps} steps, clip {args.clip}, fp32; data: {identity['examples']} tweets, "
          f"{len(data.train)} training blocks, {masked:.1%} of positions masked (prepared in {prep:.1f}s)")

    # Warm-up (allocator, thread pool, lazy imports), untimed.
    run_minimal(args, batches[:2], theta, seed)

    ose, mini, ose_eval, losses = [], [], [], set()
    for r in range(args.repeats):
        times, whole, loss_a = run_ose(args, data, theta, seed)
        ose.append(throughput(args, times))
        ose_eval.append(whole - (times[-1] - times[0]))
        times, loss_b = run_minimal(args, batches, theta, seed)
        mini.append(throughput(args, times))
        losses.add((round(loss_a, 6), round(loss_b, 6)))
        print(f"  repeat {r + 1}: ose {ose[-1][0]:7.0f} tok/s (median step {ose[-1][1]:7.0f})   "
              f"minimal {mini[-1][0]:7.0f} tok/s (median step {mini[-1][1]:7.0f})")
    a = [statistics.median(x) for x in zip(*ose)]
    b = [statistics.median(x) for x in zip(*mini)]
    same = all(x == y for x, y in losses)
    print(f"(a) ose.train.train  {a[0]:7.0f} tokens/s whole run, {a[1]:7.0f} at the median step "
          f"(medians of {args.repeats}; its evaluation on B, not counted, takes {statistics.median(ose_eval):.2f}s)")
    print(f"(b) minimal loop     {b[0]:7.0f} tokens/s whole run, {b[1]:7.0f} at the median step")
    print(f"    ratio ose/minimal {a[0] / b[0]:.3f} whole run, {a[1] / b[1]:.3f} median step (target >= 0.95); "
          f"final training losses {'identical' if same else 'DIFFER: ' + str(sorted(losses))}")

    full = [throughput(args, run_minimal(args, batches, theta, seed, mode="full")[0])
            for _ in range(args.full_repeats)]
    f = [statistics.median(x) for x in zip(*full)]
    print(f"(c) stock BertForMaskedLM forward, logits at all positions: {f[0]:7.0f} tokens/s whole run, "
          f"{f[1]:7.0f} median step; logits only at masked positions is {b[0] / f[0]:.2f}x / {b[1] / f[1]:.2f}x "
          f"faster")

    n = min(args.bf16_steps, args.steps)
    fp32 = throughput(args, run_minimal(args, batches[:n], theta, seed)[0])
    bf16 = throughput(args, run_minimal(args, batches[:n], theta, seed, bf16=True)[0])
    print(f"(d) {n} steps, masked logits: fp32 {fp32[1]:7.0f} tokens/s, bf16 autocast {bf16[1]:7.0f} tokens/s "
          f"(median step); fp32 is {fp32[1] / bf16[1]:.2f}x faster than bf16 on this CPU")


if __name__ == "__main__":
    main()
