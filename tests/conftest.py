"""Fixtures shared by every test folder."""

from __future__ import annotations

import pytest


@pytest.fixture
def one_error_line(capsys):
    """Reads what a bad-input command printed on stderr: exactly one `seqsched: error:` line,
    which it returns."""
    def read() -> str:
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("seqsched: error: "), err
        return err[0]
    return read


def build_tiny_llama(path, trace):
    """A 2-layer random LlamaForCausalLM with a BPE tokenizer trained in-process on the trace's
    prompts and the length queries (no download). Returns `path`."""
    import torch
    import transformers
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    from seqsched.predictors.llm import LENGTH_QUERY, PERCEPTION_QUERY

    torch.manual_seed(0)
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<unk>", "<s>", "</s>", "<pad>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    corpus = trace.df["prompt"].tolist() + [LENGTH_QUERY, PERCEPTION_QUERY] + [
        str(50 * k) for k in range(1, 12)] * 5
    tok.train_from_iterator(corpus, trainer)
    fast = transformers.PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>",
                                                eos_token="</s>", unk_token="<unk>",
                                                pad_token="<pad>")
    cfg = transformers.LlamaConfig(vocab_size=fast.vocab_size, hidden_size=32,
                                   intermediate_size=64, num_hidden_layers=2,
                                   num_attention_heads=4, num_key_value_heads=4,
                                   max_position_embeddings=512, bos_token_id=fast.bos_token_id,
                                   eos_token_id=fast.eos_token_id, pad_token_id=fast.pad_token_id)
    transformers.LlamaForCausalLM(cfg).save_pretrained(path)
    fast.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_llama_builder():
    """`build_tiny_llama(path, trace)` for tests that need a tiny LLaMA folder of their own."""
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    return build_tiny_llama
