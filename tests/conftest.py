import pytest
import torch

from ose.cli import main


@pytest.fixture(autouse=True)
def _two_threads():
    # Keep every test at the machine's size whatever the host.
    torch.set_num_threads(2)


@pytest.fixture
def run_cli(capsys):
    """Run ``ose ARGS``; return (exit code, stdout, stderr)."""
    def run(*args):
        code = main([str(a) for a in args])
        out = capsys.readouterr()
        return code, out.out, out.err
    return run


def tiny_space_toml(H=(16, 32), I=(32, 64), head=None) -> str:
    """A search space of 8 tiny BERTs (D 1-2, A 2) for end-to-end tests; T is its largest point."""
    lines = ['family = "bert"', 'constraints = ["H % A == 0"]', "[parameters]", "D = [1, 2]", "A = [2]",
             f"H = {list(H)}", f"I = {list(I)}", "[maximum_point]", "D = 2", "A = 2", f"H = {max(H)}",
             f"I = {max(I)}", "[settings]", "vocab_size = 512", "max_positions = 64", "seq_len = 32"]
    return "\n".join(lines + ([f'head = "{head}"'] if head else [])) + "\n"


@pytest.fixture(scope="session")
def tiny_space():
    """``tiny_space(H=..., I=..., head=...)`` → the TOML text of a tiny space."""
    return tiny_space_toml


@pytest.fixture(scope="session")
def bert_checkpoint(tmp_path_factory):
    """A small pretrained-looking BERT saved as a Hugging Face checkpoint: random weights (seeded),
    a WordPiece tokenizer of 512 tokens trained on 2,000 embedded tweets, no heads (as
    all-MiniLM-L6-v2 ships). Nothing is downloaded."""
    from transformers import BertConfig, BertModel

    from ose.config import ExtractConfig
    from ose.data import read_examples, train_wordpiece
    from ose.export import tokenizer_for_export

    path = tmp_path_factory.mktemp("checkpoint") / "tiny-bert"
    tok = train_wordpiece([e.text for e in read_examples(ExtractConfig(max_examples=2000))], 512)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=tok.get_vocab_size(), hidden_size=64, num_hidden_layers=4, num_attention_heads=4,
                        intermediate_size=128, max_position_embeddings=64)
    BertModel(config).save_pretrained(path)
    tokenizer_for_export(tok, 64).save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def llama_checkpoint(tmp_path_factory):
    """A small Llama-style checkpoint (GQA: 4 query heads, 2 key/value heads; untied LM head):
    random seeded weights and a 512-token WordPiece tokenizer trained on embedded tweets."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from ose.config import ExtractConfig
    from ose.data import read_examples, train_wordpiece
    from ose.export import tokenizer_for_export

    path = tmp_path_factory.mktemp("checkpoint") / "tiny-llama"
    tok = train_wordpiece([e.text for e in read_examples(ExtractConfig(max_examples=2000))], 512)
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=tok.get_vocab_size(), hidden_size=64, intermediate_size=128, num_hidden_layers=4,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                         tie_word_embeddings=False)
    LlamaForCausalLM(config).save_pretrained(path)
    tokenizer_for_export(tok, 64).save_pretrained(path)
    return path


def byte_level_bpe(vocab_size: int = 512):
    """A byte-level BPE tokenizer as small decoders ship one (SmolLM's kind): no [CLS] or [MASK],
    one special token, <|endoftext|>, that begins and ends texts. Trained on embedded tweets."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    from ose.config import ExtractConfig
    from ose.data import read_examples

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<|endoftext|>"], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator([e.text for e in read_examples(ExtractConfig(max_examples=2000))], trainer)
    return tok


@pytest.fixture(scope="session")
def decoder_checkpoint(tmp_path_factory):
    """A SmolLM-like checkpoint as transformers 5 saves it: byte-level BPE with <|endoftext|> as bos
    and eos, tied embeddings, rope θ = 500,000 (in ``rope_parameters``); random seeded weights."""
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    path = tmp_path_factory.mktemp("checkpoint") / "smol-llama"
    tok = byte_level_bpe()
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=tok.get_vocab_size(), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                         tie_word_embeddings=True, rope_theta=500000.0, bos_token_id=0, eos_token_id=0)
    LlamaForCausalLM(config).save_pretrained(path)
    PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|endoftext|>", eos_token="<|endoftext|>",
                            model_max_length=64).save_pretrained(path)
    return path
