"""A model folder, the format the Rust program loads (`src/model/pipeline.rs`, `ModelConfig`):

    config.json               {"name", "image_size", "default_robot_id", "dit": {...},
                               "vae": {diffusers AutoencoderKLCogVideoX config},
                               "text_encoder": {transformers T5Config}, "sampler": {...} | null,
                               "files": {...}}
    transformer.safetensors   DiT, SAT names without `model.diffusion_model.`
    vae.safetensors           VAE, diffusers names
    text_encoder.safetensors  T5 encoder, transformers names
    tokenizer.json            a `tokenizers` tokenizer (T5 conventions: <pad>=0, </s>=1, <unk>=2)

Written atomically: into a temporary sibling folder, then renamed.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile

import torch
from safetensors.torch import load_file, save_file
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
from transformers import T5Config, T5EncoderModel

from .dit import DitConfig, VideoVLADiT
from .vae import CogVideoXVAE

FILES = {
    "transformer": ["transformer.safetensors"],
    "vae": ["vae.safetensors"],
    "text_encoder": ["text_encoder.safetensors"],
    "tokenizer": "tokenizer.json",
}


def word_level_tokenizer(words: list[str]) -> Tokenizer:
    """Lower-cased word-level tokenizer over `words` with T5's special ids and an `</s>` suffix."""
    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2}
    for w in sorted(set(w.lower() for w in words)):
        if w not in vocab:
            vocab[w] = len(vocab)
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    return tok


def tokenize(tok: Tokenizer, text: str, max_length: int, pad_id: int = 0, eos_id: int = 1) -> list[int]:
    """`T5Tokenizer(max_length, padding="max_length", truncation=True)` semantics: pieces, `</s>`,
    padding; an over-long text keeps its first max_length-1 pieces and `</s>`."""
    ids = tok.encode(text).ids
    if not ids or ids[-1] != eos_id:
        ids = ids + [eos_id]
    if len(ids) > max_length:
        ids = ids[: max_length - 1] + [eos_id]
    return ids + [pad_id] * (max_length - len(ids))


def _state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().float().contiguous() for k, v in module.state_dict().items()}


def save_model_dir(
    out: str,
    *,
    name: str,
    image_size: int,
    dit: VideoVLADiT,
    vae_config: dict,
    vae: CogVideoXVAE,
    t5: T5EncoderModel,
    tokenizer: Tokenizer,
    sampler: dict | None = None,
    default_robot_id: int = 0,
    extra: dict | None = None,
) -> None:
    parent = os.path.dirname(os.path.abspath(out)) or "."
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".tmp-model-", dir=parent)
    try:
        t5_cfg = t5.config.to_dict()
        t5_cfg = {k: v for k, v in t5_cfg.items() if not k.startswith("_") and k != "transformers_version"}
        config = {
            "name": name,
            "image_size": image_size,
            "default_robot_id": default_robot_id,
            "dit": dit.cfg.to_dict(),
            "vae": vae_config,
            "text_encoder": t5_cfg,
            "sampler": sampler,
            "files": FILES,
        }
        if extra:
            config.update(extra)
        with open(os.path.join(tmp, "config.json"), "w") as f:
            json.dump(config, f, indent=1)
        save_file(_state(dit), os.path.join(tmp, FILES["transformer"][0]))
        save_file(_state(vae), os.path.join(tmp, FILES["vae"][0]))
        t5_state = _state(t5)
        # tied copy: candle reads `shared.weight`; drop the duplicate embed_tokens alias
        t5_state.pop("encoder.embed_tokens.weight", None)
        save_file(t5_state, os.path.join(tmp, FILES["text_encoder"][0]))
        tokenizer.save(os.path.join(tmp, FILES["tokenizer"]))
        os.chmod(tmp, 0o755)
        for f in os.listdir(tmp):
            os.chmod(os.path.join(tmp, f), 0o644)
        if os.path.exists(out):
            shutil.rmtree(out)
        os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


class LoadedModel:
    def __init__(self, path: str):
        with open(os.path.join(path, "config.json")) as f:
            self.config = json.load(f)
        files = self.config.get("files", FILES)
        self.dit = VideoVLADiT(DitConfig.from_dict(self.config["dit"]))
        self.dit.load_state_dict(_load(path, files["transformer"]), strict=False)
        self.vae = CogVideoXVAE.from_config(self.config["vae"])
        self.vae.load_state_dict(_load(path, files["vae"]))
        t5_cfg = T5Config(**self.config["text_encoder"])
        self.t5 = T5EncoderModel(t5_cfg)
        missing, unexpected = self.t5.load_state_dict(_load(path, files["text_encoder"]), strict=False)
        assert not unexpected, unexpected
        assert all("embed_tokens" in k for k in missing), missing
        self.tokenizer = Tokenizer.from_file(os.path.join(path, files["tokenizer"]))
        for m in (self.dit, self.vae, self.t5):
            m.eval()

    @property
    def image_size(self) -> int:
        return self.config["image_size"]

    @property
    def text_length(self) -> int:
        return self.config["dit"]["text_length"]


def _load(path: str, files: list[str]) -> dict[str, torch.Tensor]:
    state = {}
    for f in files:
        state.update(load_file(os.path.join(path, f)))
    return state


def load_model_dir(path: str) -> LoadedModel:
    return LoadedModel(path)
