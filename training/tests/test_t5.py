"""Witness (d): text-encoder conventions of the official FrozenT5Embedder, checked with transformers'
own T5Tokenizer (a throw-away sentencepiece model trained here, since the real t5-v1_1-xxl
tokenizer is not available offline) and T5EncoderModel:
max_length padding with pad id 0, truncation keeping EOS last, no attention mask, zero uncond."""

import os

import pytest
import torch

from videovla_ref import t5 as t5ref

from gen_fixtures import T5_TINY, build_t5_tiny


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    spm = pytest.importorskip("sentencepiece")
    from transformers import T5Tokenizer

    d = tmp_path_factory.mktemp("spm")
    corpus = d / "corpus.txt"
    lines = ["pick coke can", "open the top drawer and put the apple inside",
             "move the sponge near the blue cup", "close the middle drawer", "place the eggplant in the basket"]
    corpus.write_text("\n".join(lines * 40))
    spm.SentencePieceTrainer.train(input=str(corpus), model_prefix=str(d / "sp"), vocab_size=30, model_type="unigram",
                                   pad_id=0, eos_id=1, unk_id=2, bos_id=-1, character_coverage=1.0, minloglevel=2)
    return T5Tokenizer(vocab_file=str(d / "sp.model"), extra_ids=0)


def test_tokenizer_conventions(tokenizer):
    L = 12
    ids = t5ref.tokenize(tokenizer, ["pick coke can", "open the top drawer and put the apple inside " * 3, ""], L)
    assert ids.shape == (3, L) and ids.dtype == torch.int64
    for row in ids.tolist():
        n = row.index(1) + 1 if 1 in row else L
        assert row[n - 1] == 1, "EOS ends the text"
        assert all(t == 0 for t in row[n:]), "right padding with pad id 0"
    assert ids[1, -1].item() == 1, "truncated text keeps EOS as the last token"
    assert ids[2, 0].item() == 1 and (ids[2, 1:] == 0).all(), "empty text = EOS + padding"
    print("tokenizer conventions: ok (max_length padding, pad 0, EOS kept on truncation)")


@torch.no_grad()
def test_fixture_generator_equals_transformers_and_no_mask():
    from safetensors.torch import load_file
    from transformers import T5Config, T5EncoderModel

    path = os.path.join(os.path.dirname(__file__), "..", "..", "tests", "fixtures", "t5_tiny.safetensors")
    fx = load_file(path)
    model = T5EncoderModel(T5Config(**T5_TINY)).eval()
    sd = {k: v for k, v in fx.items() if not k.startswith("io.")}
    missing, unexpected = model.load_state_dict(sd, strict=False)
    assert not unexpected and set(missing) <= {"encoder.embed_tokens.weight"}, (missing, unexpected)
    ids = fx["io.input_ids"]
    out = model(input_ids=ids).last_hidden_state
    e = ((out - fx["io.hidden"]).norm() / fx["io.hidden"].norm()).item()
    print(f"t5_tiny fixture vs transformers T5EncoderModel (no mask): rel err {e:.3e}")
    assert e < 1e-6
    # the convention matters: with the padding mask the padded row changes
    masked = model(input_ids=ids, attention_mask=(ids != 0).long()).last_hidden_state
    d = ((masked[0] - out[0]).norm() / out[0].norm()).item()
    print(f"info: padded row with vs without attention mask: rel diff {d:.3e} (official: no mask)")
    assert d > 1e-3
    assert torch.equal(t5ref.uncond_context(out), torch.zeros_like(out))
    # the generator's own model is the same function
    ref = t5ref.encode(build_t5_tiny(), ids)
    # (to float32 rounding: another CPU's vector kernels need not reproduce the fixture bit for bit)
    assert ((ref - fx["io.hidden"]).norm() / fx["io.hidden"].norm()).item() < 1e-6
