"""``ose.train``: the error surrogate ê from a short, clipped SGD run."""

import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F

from ose.config import ExtractConfig, Theta
from ose.data import prepare
from ose.families import get_family
from ose.tasks import get_task
from ose.train import CandidateFailed, distillation_loss, measure
from ose.train import train as train_candidate

VOCAB = 512
BERT = get_family("bert")
SETTINGS = BERT.settings_type(vocab_size=VOCAB, max_positions=64, seq_len=32, head="mlm")
XI = {"D": 1, "A": 2, "H": 64, "I": 128}
MLM = get_task("mlm")


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """MLM data from 2,000 embedded tweets (blocks of 32 tokens, B = 2 batches of 32) and its tokenizer."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("OSE_CACHE", str(tmp_path_factory.mktemp("cache")))
        data, tok, _ = prepare(ExtractConfig(max_examples=2000, eval_batches=2), MLM, SETTINGS)
    return data, tok


@pytest.fixture(scope="module")
def mlm(prepared):
    return prepared[0]


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("OSE_CACHE", str(tmp_path / "cache"))


@pytest.fixture(autouse=True)
def _one_thread():
    # One thread: on a shared 2-core machine two OpenMP threads can run 10-30x slower.
    torch.set_num_threads(1)


def model(seed=0, xi=XI):
    torch.manual_seed(seed)
    return BERT.build(xi, SETTINGS, head="masked-lm")


def fp32(window: int = 10, **kw) -> ExtractConfig:
    """The study configuration a training run sees: resolved to fp32 on the CPU."""
    return ExtractConfig(precision="fp32", device="cpu", threads=1, tolerance_window=window, **kw)


def train(model, data, theta, cfg, seed=0, teacher=None, progress=None):
    return train_candidate(model, BERT, MLM, data, theta, dataclasses.replace(cfg, seed=seed), teacher, progress)


def evaluate(model, data, cfg):
    m = measure(model, BERT, MLM, data.heldout, cfg)
    return m.error, m.loss


def test_heldout_error_falls_with_training(mlm):
    # Measured over seeds 0-3: error 0.99-1.0 → 0.93-0.95, cross-entropy 6.25-6.30 → 5.34-5.40.
    m = model()
    cfg = fp32(steps=100, clip=1.0)
    error0, loss0 = evaluate(m, mlm, cfg)
    result = train(m, mlm, Theta(lr=0.2, momentum=0.9, batch_size=32), cfg, seed=0)
    assert result.steps == 100 and math.isfinite(result.train_loss)
    assert error0 > 0.98
    assert result.error < error0 - 0.02, (error0, result.error)
    assert result.loss < loss0 - 0.5, (loss0, result.loss)
    assert evaluate(m, mlm, cfg) == pytest.approx((result.error, result.loss))


def test_metric_loss_reports_the_cross_entropy(mlm):
    r = train(model(), mlm, Theta(lr=0.1, batch_size=8), fp32(steps=3, metric="loss"), seed=0)
    assert r.error == r.loss and r.loss > 1


def test_training_is_seeded(mlm):
    theta = Theta(lr=0.1, batch_size=8)
    a = train(model(), mlm, theta, fp32(steps=5), seed=0)
    b = train(model(), mlm, theta, fp32(steps=5), seed=0)
    assert (a.error, a.loss, a.train_loss) == (b.error, b.loss, b.train_loss)


def test_weight_clipping_keeps_every_parameter_in_bounds(mlm):
    m = model()
    assert max(p.abs().max().item() for p in m.parameters()) > 0.0625  # LayerNorm gains start at 1
    train(m, mlm, Theta(lr=0.5, momentum=0.9, batch_size=8), fp32(steps=5, clip=0.0625), seed=0)
    for name, p in m.named_parameters():
        assert p.min().item() >= -0.0625 and p.max().item() <= 0.0625, name


def test_no_clipping_leaves_the_weights_free(mlm):
    # At lr 2 three steps push the word embeddings to ~1.6 (measured): past the default c = 1.0,
    # so a run that clipped anyway, at c or at any other bound ≤ 1.2, would fail here.
    theta = Theta(lr=2.0, momentum=0.9, batch_size=8)
    free, clipped = model(), model()
    train(free, mlm, theta, fp32(steps=3, clip=None), seed=0)
    train(clipped, mlm, theta, fp32(steps=3, clip=1.0), seed=0)
    embeddings = free.bert.embeddings.word_embeddings.weight
    assert embeddings.abs().max().item() > 1.2
    assert max(p.abs().max().item() for p in clipped.parameters()) <= 1.0
    assert not torch.equal(embeddings, clipped.bert.embeddings.word_embeddings.weight)


def test_early_stopping_with_a_large_tolerance(mlm):
    cfg = fp32(steps=20, tolerance=100.0, window=2)
    r = train(model(), mlm, Theta(lr=0.1, batch_size=8), cfg, seed=0)
    assert r.steps == 4  # checked at step 2 (first reading) and step 4 (|Δ| < 100)
    full = train(model(), mlm, Theta(lr=0.1, batch_size=8), fp32(steps=20, tolerance=1e-12, window=2), seed=0)
    assert full.steps == 20


def test_progress_sees_every_step(mlm):
    seen = []
    train(model(), mlm, Theta(lr=0.1, batch_size=8), fp32(steps=4), seed=0,
          progress=lambda step, loss: seen.append((step, loss)))
    assert [s for s, _ in seen] == [1, 2, 3, 4] and all(math.isfinite(l) for _, l in seen)


def test_diverging_training_raises_candidate_failed(mlm):
    with pytest.raises(CandidateFailed, match="non-finite"):
        train(model(), mlm, Theta(lr=1e30, momentum=0.0, batch_size=8), fp32(steps=20, clip=None), seed=0)


def test_nan_loss_raises_candidate_failed(mlm, monkeypatch):
    real = BERT.logits

    def poisoned(model, batch, task):
        out = real(model, batch, task)
        return out * float("nan") if model.training else out

    monkeypatch.setattr(BERT, "logits", poisoned)
    with pytest.raises(CandidateFailed, match="at step 1"):
        train(model(), mlm, Theta(lr=0.1, batch_size=8), fp32(steps=5), seed=0)


# --- knowledge distillation ---------------------------------------------------------------

@pytest.fixture(scope="module")
def teacher_dir(tmp_path_factory, prepared):
    path = tmp_path_factory.mktemp("teacher")
    model(seed=123, xi={"D": 1, "A": 2, "H": 32, "I": 64}).save_pretrained(path)
    prepared[1].save(str(path / "tokenizer.json"))  # the teacher reads the study's token ids
    return path


def test_distillation_loss_differs_from_cross_entropy():
    g = torch.Generator().manual_seed(0)
    student, teacher = torch.randn(10, VOCAB, generator=g), torch.randn(10, VOCAB, generator=g)
    y = torch.randint(0, VOCAB, (10,), generator=g)
    cfg = ExtractConfig()
    kd = distillation_loss(student, teacher, F.cross_entropy(student, y), cfg)
    ce = F.cross_entropy(student, y)
    assert kd.item() != pytest.approx(ce.item())
    tau = cfg.kd_temperature
    kl = (F.softmax(teacher / tau, -1) * (F.log_softmax(teacher / tau, -1) - F.log_softmax(student / tau, -1)))
    expected = cfg.kd_alpha * ce + cfg.kd_beta * tau ** 2 * kl.sum(-1).mean()
    assert kd.item() == pytest.approx(expected.item(), rel=1e-5)
    # A student that agrees with its teacher pays only the α-weighted cross-entropy.
    agree = distillation_loss(teacher, teacher, F.cross_entropy(teacher, y), cfg).item()
    assert agree == pytest.approx(cfg.kd_alpha * F.cross_entropy(teacher, y).item(), rel=1e-5)


def test_training_with_a_teacher_changes_the_loss(mlm, prepared, teacher_dir):
    from ose.context import load_teacher

    teacher = load_teacher(str(teacher_dir), MLM, VOCAB, prepared[0], "cpu", prepared[1])
    assert not teacher.training
    theta, cfg = Theta(lr=0.1, batch_size=8), fp32(steps=5)
    plain = train(model(), mlm, theta, cfg, seed=0)
    distilled = train(model(), mlm, theta, cfg, seed=0, teacher=teacher)
    again = train(model(), mlm, theta, cfg, seed=0, teacher=teacher)
    assert distilled.train_loss != pytest.approx(plain.train_loss)
    assert distilled.train_loss == again.train_loss
    assert math.isfinite(distilled.error)


def test_a_remembering_teacher_answers_each_batch_once_and_changes_nothing(mlm, prepared, teacher_dir):
    from ose.context import load_teacher
    from ose.train import TeacherMemo

    teacher = load_teacher(str(teacher_dir), MLM, VOCAB, prepared[0], "cpu", prepared[1])
    calls = []
    teacher.register_forward_hook(lambda *a: calls.append(1))
    theta, cfg = Theta(lr=0.1, batch_size=8), fp32(steps=5)
    direct = train(model(), mlm, theta, cfg, seed=0, teacher=teacher)
    on_b = -(-mlm.heldout.rows // 64)  # B's chunks, answered for the divergence from T on B
    assert len(calls) == 5 + on_b
    memo = TeacherMemo(teacher)
    first = train(model(), mlm, theta, cfg, seed=0, teacher=memo)
    second = train(model(), mlm, theta, cfg, seed=0, teacher=memo)  # another candidate, the same batches
    assert len(calls) == 2 * (5 + on_b)  # once for the direct run, once for both remembered runs
    assert first.train_loss == second.train_loss == direct.train_loss and first.loss == direct.loss
    assert first.kl == second.kl == direct.kl and first.kl > 0
    other = train(model(), mlm, theta, cfg, seed=1, teacher=memo)  # another batch order: new answers
    assert len(calls) > 2 * (5 + on_b) and math.isfinite(other.loss)
    teacher.train()
    with pytest.raises(RuntimeError, match="eval mode"):
        train(model(), mlm, theta, cfg, seed=0, teacher=memo)



def test_a_teacher_vocab_txt_is_compared_token_by_token(prepared, teacher_dir, tmp_path):
    from ose.config import ConfigError
    from ose.context import load_teacher

    tok = prepared[1]
    path = tmp_path / "teacher"
    path.mkdir()
    for f in teacher_dir.iterdir():  # the same model, with vocab.txt instead of tokenizer.json
        if f.name != "tokenizer.json":
            (path / f.name).write_bytes(f.read_bytes())
    tokens = sorted(tok.get_vocab(), key=tok.get_vocab().get)
    (path / "vocab.txt").write_text("".join(t + "\n" for t in tokens))
    assert not load_teacher(str(path), MLM, VOCAB, prepared[0], "cpu", tok).training
    (path / "vocab.txt").write_text("".join(t + "\n" for t in [*tokens, "[EXTRA]"]))
    with pytest.raises(ConfigError, match=r"tokens the study's lacks: 1, e\.g\. '\[EXTRA\]'\); the teacher needs"):
        load_teacher(str(path), MLM, VOCAB, prepared[0], "cpu", tok)
    tokens[5], tokens[6] = tokens[6], tokens[5]  # the same tokens, two ids swapped
    (path / "vocab.txt").write_text("".join(t + "\n" for t in tokens))
    with pytest.raises(ConfigError) as e:
        load_teacher(str(path), MLM, VOCAB, prepared[0], "cpu", tok)
    assert str(e.value) == (f"teacher {path}: its tokenizer is not the study's (2 of the study's {len(tokens)} tokens "
                            f"differ, e.g. {tokens[6]!r} is 6 in the teacher's, 5 in the study's); the teacher needs "
                            f"the same tokenizer")


# --- θ --------------------------------------------------------------------------------------

@pytest.mark.parametrize("kw, problem", [
    ({"lr": "fast"}, "lr must be a number"),
    ({"lr": None}, "lr must be a number"),
    ({"lr": True}, "lr must be a number"),
    ({"lr": float("nan")}, "lr must be a number"),
    ({"lr": float("inf")}, "lr must be a number"),
    ({"momentum": "0.9"}, "momentum must be a number"),
    ({"batch_size": 8.0}, "batch_size must be a positive integer"),
    ({"batch_size": "32"}, "batch_size must be a positive integer"),
    ({"batch_size": 0}, "batch_size must be a positive integer"),
    ({"lr": 0}, "lr > 0"),
    ({"lr": -0.1}, "lr > 0"),
    ({"momentum": 1.0}, "momentum < 1"),
    ({"momentum": -0.1}, "momentum < 1"),
])
def test_theta_check_rejects(kw, problem):
    message = Theta(**kw).check()
    assert message is not None and problem in message and "\n" not in message


def test_theta_check_accepts_numbers():
    assert Theta().check() is None
    assert Theta(lr=1, momentum=0, batch_size=1).check() is None
    assert Theta(lr=0.3, momentum=0.5, batch_size=64).as_dict() == {"lr": 0.3, "momentum": 0.5, "batch_size": 64}


def test_a_saved_state_holds_the_cuda_random_state_where_a_gpu_trains(monkeypatch):
    """A run resumed on a GPU continues dropout's CUDA stream where it stopped, not only the CPU's."""
    from ose import train as training

    streams = [torch.tensor([1, 2, 3], dtype=torch.uint8)]
    restored = []
    monkeypatch.setattr(torch.cuda, "get_rng_state_all", lambda: streams)
    monkeypatch.setattr(torch.cuda, "set_rng_state_all", restored.append)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert "cuda" not in training._random_state("cpu")
    state = training._random_state("cuda")
    assert torch.equal(state["cpu"], torch.get_rng_state()) and state["cuda"] is streams
    training._restore_random_state(state)
    assert restored == [streams]


def test_a_checkpoint_resumes_to_the_same_weights_and_loads_weights_only(mlm, tmp_path):
    """Interrupted at step 4 (its last save at step 2), a run continues from the saved step and ends
    with the weights of an uninterrupted run; its file holds nothing weights_only refuses."""
    from ose.train import Checkpoint, fit

    theta, cfg = Theta(lr=0.1, momentum=0.9, batch_size=8), fp32(steps=6)

    class Killed(Exception):
        pass

    def kill_at_4(step, loss):
        if step == 4:
            raise Killed

    def run(path, progress=None):
        m = model(seed=1)
        torch.manual_seed(0)  # the dropout stream a fresh run starts from
        fit(m, BERT, MLM, mlm, theta, cfg, 6, progress=progress, checkpoint=Checkpoint(path, {"run": 1}, every=2))
        return m

    whole = run(tmp_path / "whole.pt")
    with pytest.raises(Killed):
        run(tmp_path / "killed.pt", kill_at_4)
    saved = torch.load(tmp_path / "killed.pt", weights_only=True)
    assert saved["step"] == 2 and not saved.get("finished") and "optimizer" in saved
    resumed = run(tmp_path / "killed.pt")
    assert torch.load(tmp_path / "killed.pt", weights_only=True)["finished"]
    for (name, a), b in zip(whole.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name


# --- the other measures of ê (``--metric``) ---------------------------------------------------

def test_train_loss_metric_is_the_mean_raw_loss_of_the_last_quarter(mlm):
    emas = []
    theta, cfg = Theta(lr=0.1, batch_size=8), fp32(steps=8, metric="train-loss")
    result = train(model(), mlm, theta, cfg, progress=lambda step, ema: emas.append(ema))
    raw = [emas[0], *((b - 0.9 * a) / 0.1 for a, b in zip(emas, emas[1:]))]  # the EMA undone
    assert result.error == pytest.approx(sum(raw[-2:]) / 2, rel=1e-6)  # 8 // 4 = 2 steps
    assert result.train_loss_tail == result.error and result.error != pytest.approx(result.train_loss)
    assert result.on_b["values"] == pytest.approx(raw[-2:], abs=1e-5)  # resampled by step
    plain = train(model(), mlm, theta, fp32(steps=8))
    assert plain.error != result.error and plain.train_loss_tail == pytest.approx(result.error)


def test_kl_metric_is_the_divergence_from_the_teachers_answers_on_b(mlm, prepared, teacher_dir):
    from ose.context import load_teacher

    teacher = load_teacher(str(teacher_dir), MLM, VOCAB, prepared[0], "cpu", prepared[1])
    student = model()
    result = train(student, mlm, Theta(lr=0.1, batch_size=8), fp32(steps=3, metric="kl"), teacher=teacher)
    student.eval()
    b = mlm.heldout
    with torch.no_grad():
        s = F.log_softmax(BERT.logits(student, b, MLM.head), -1)
        t = F.log_softmax(MLM.teacher_logits(teacher, b), -1)
    by_hand = (t.exp() * (t - s)).sum(-1).mean().item()  # KL(T ‖ candidate), per target
    assert result.error == result.kl == pytest.approx(by_hand, rel=1e-4)
    assert sum(result.on_b["values"]) / sum(result.on_b["targets"]) == pytest.approx(by_hand, rel=1e-3)
    itself = measure(teacher, BERT, MLM, b, fp32(), teacher=teacher)  # a model does not diverge from itself
    assert itself.kl == pytest.approx(0.0, abs=1e-5)
    assert measure(student, BERT, MLM, b, fp32()).kl is None


def test_kl_metric_needs_a_teacher():
    from ose.config import ConfigError

    with pytest.raises(ConfigError, match="metric kl .*--teacher"):
        ExtractConfig(metric="kl").validate()


# --- r runs from successive seeds (``--repeats``) ---------------------------------------------

@pytest.mark.parametrize("metric", ["error", "train-loss"])
def test_repeats_average_the_runs_of_successive_seeds_row_by_row(mlm, metric):
    from ose.train import train_repeated

    theta, cfg = Theta(lr=0.1, batch_size=8), fp32(steps=4, metric=metric)
    seen = []
    both = train_repeated(model, BERT, MLM, mlm, theta, dataclasses.replace(cfg, repeats=2),
                          progress=lambda step, ema: seen.append(step))
    first, second = (train(model(seed), mlm, theta, cfg, seed=seed) for seed in (0, 1))
    assert first.loss != pytest.approx(second.loss)  # the second run really is another seed's
    assert both.error == pytest.approx((first.error + second.error) / 2)
    assert both.loss == pytest.approx((first.loss + second.loss) / 2)
    assert both.train_loss_tail == pytest.approx((first.train_loss_tail + second.train_loss_tail) / 2)
    assert both.steps == 8 and seen == list(range(1, 9))
    rows = [(a + b) / 2 for a, b in zip(first.on_b["values"], second.on_b["values"])]
    assert both.on_b["values"] == pytest.approx(rows, abs=1e-5)
    assert both.on_b.get("targets") == first.on_b.get("targets")
    one = train_repeated(model, BERT, MLM, mlm, theta, cfg)
    assert (one.error, one.loss, one.on_b) == (first.error, first.loss, first.on_b)


def test_repeats_with_an_early_stopped_train_loss_are_refused():
    from ose.config import ConfigError

    with pytest.raises(ConfigError, match="repeats"):
        ExtractConfig(repeats=2, tolerance=0.01, metric="train-loss").validate()
