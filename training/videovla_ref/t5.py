"""Text encoder reference: transformers' ``T5EncoderModel`` (T5 v1.1, gated-GELU) used exactly as the
official ``FrozenT5Embedder``:

* tokenizer call: ``truncation=True, max_length=226, padding="max_length"`` -> right padding with
  pad id 0; an over-long text is cut so that EOS (id 1) is still the last token;
* the encoder is called with ``input_ids`` only -- **no attention mask**, so pad tokens are attended
  to and their outputs are part of the 226-token context;
* the unconditional (CFG) context is an all-zero tensor (``force_uc_zero_embeddings=["txt"]``), not
  the encoding of "".

HF's ``feed_forward_proj: "gated-gelu"`` means ``dense_act_fn = "gelu_new"`` (the tanh approximation).
The released pipeline loads the model in float32 and ``get_model`` casts it to bf16.
"""

from __future__ import annotations

import torch

MAX_LENGTH = 226


def build_t5_encoder(config: dict):
    from transformers import T5Config, T5EncoderModel

    return T5EncoderModel(T5Config(**config)).eval()


def tokenize(tokenizer, texts, max_length: int = MAX_LENGTH) -> torch.Tensor:
    enc = tokenizer(
        list(texts),
        truncation=True,
        max_length=max_length,
        return_length=True,
        return_overflowing_tokens=False,
        padding="max_length",
        return_tensors="pt",
    )
    return enc["input_ids"]


@torch.no_grad()
def encode(model, input_ids: torch.Tensor) -> torch.Tensor:
    return model(input_ids=input_ids).last_hidden_state


def uncond_context(cond: torch.Tensor) -> torch.Tensor:
    return torch.zeros_like(cond)
