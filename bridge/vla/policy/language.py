"""Language: a word-level tokenizer trained locally on the instructions, and a ``transformers`` text encoder.

By default the encoder is a small BERT built from a config (no download) over a tokenizer trained with
``tokenizers`` on the world's training instructions; ``save_pretrained`` writes both so
``AutoTokenizer.from_pretrained`` reloads the tokenizer. Any local path or hub id of a pretrained text
model works too (read from the local Hugging Face cache when offline). Unknown words map to ``[UNK]``.
"""

from __future__ import annotations

import pickle
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import NamedTuple

from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
from torch import Tensor, nn
from transformers import AutoModel, AutoTokenizer, BertConfig, BertModel, PreTrainedTokenizerFast

from bridge.errors import CorruptFileError, MissingFileError

SPECIAL_TOKENS = {
    "pad_token": "[PAD]",
    "unk_token": "[UNK]",
    "cls_token": "[CLS]",
    "sep_token": "[SEP]",
    "mask_token": "[MASK]",
}
MAX_LENGTH = 32  # instructions are a handful of words


def train_tokenizer(texts: Iterable[str]) -> PreTrainedTokenizerFast:
    """A BERT-style word-level tokenizer (lower-cased, ``[CLS] ... [SEP]``) whose vocabulary is ``texts``' words."""
    tokenizer = Tokenizer(models.WordLevel(unk_token=SPECIAL_TOKENS["unk_token"]))
    tokenizer.normalizer = normalizers.Sequence(
        [normalizers.NFD(), normalizers.Lowercase(), normalizers.StripAccents()]
    )
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.train_from_iterator(texts, trainers.WordLevelTrainer(special_tokens=list(SPECIAL_TOKENS.values())))
    return wrap_tokenizer(tokenizer)


def wrap_tokenizer(tokenizer: Tokenizer | str) -> PreTrainedTokenizerFast:
    """A ``tokenizers.Tokenizer`` (or its JSON) as a ``transformers`` tokenizer with BERT's special tokens."""
    if isinstance(tokenizer, str):
        tokenizer = Tokenizer.from_str(tokenizer)
    cls, sep = SPECIAL_TOKENS["cls_token"], SPECIAL_TOKENS["sep_token"]
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{cls} $A {sep}", special_tokens=[(cls, tokenizer.token_to_id(cls)), (sep, tokenizer.token_to_id(sep))]
    )
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, model_max_length=MAX_LENGTH, **SPECIAL_TOKENS)


class TextOutput(NamedTuple):
    tokens: Tensor  # (B, L, D)
    mask: Tensor  # (B, L) bool, False at padding
    pooled: Tensor  # (B, D): the mean of the real tokens


class TextEncoder(nn.Module):
    """Instructions (a list of strings) -> :class:`TextOutput`; tokenises on the fly on the model's device."""

    def __init__(self, model: nn.Module, tokenizer, trained_tokenizer: bool) -> None:
        super().__init__()
        self.model, self.tokenizer = model, tokenizer
        self.trained_tokenizer = trained_tokenizer  # True: ours, trained here; it must travel with the weights
        self.dim = model.config.hidden_size

    def forward(self, texts: Sequence[str]) -> TextOutput:
        device = next(self.model.parameters()).device
        batch = self.tokenizer(
            list(texts), padding=True, truncation=True, max_length=MAX_LENGTH, return_tensors="pt"
        ).to(device)
        tokens = self.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
        mask = batch["attention_mask"].bool()
        pooled = (tokens * mask[..., None]).sum(1) / mask.sum(1, keepdim=True).clamp_min(1)
        return TextOutput(tokens, mask, pooled)

    def save_pretrained(self, path: str | Path) -> None:
        """The tokenizer and the model's config (``AutoTokenizer`` / ``AutoConfig`` reload them)."""
        self.tokenizer.save_pretrained(str(path))
        self.model.config.save_pretrained(str(path))


def build_text_encoder(
    name: str | None,
    vocabulary: Iterable[str],
    dim: int = 64,
    layers: int = 2,
    heads: int = 2,
    tokenizer: PreTrainedTokenizerFast | None = None,
) -> TextEncoder:
    """``name=None``: a small BERT from a config over a tokenizer trained on ``vocabulary`` (a list of
    instructions), or over ``tokenizer`` when given (a saved policy's). Otherwise ``name`` is a local folder
    or hub id of a pretrained ``transformers`` model."""
    if name is None:
        tokenizer = tokenizer or train_tokenizer(vocabulary)
        config = BertConfig(
            vocab_size=len(tokenizer), hidden_size=dim, num_hidden_layers=layers, num_attention_heads=heads,
            intermediate_size=4 * dim, max_position_embeddings=MAX_LENGTH, type_vocab_size=1,
            pad_token_id=tokenizer.pad_token_id,
        )  # fmt: skip
        return TextEncoder(BertModel(config, add_pooling_layer=False), tokenizer, trained_tokenizer=True)
    local = Path(name).expanduser()
    if not local.is_dir() and (local.is_absolute() or name.startswith((".", "~")) or name.count("/") > 1):
        raise MissingFileError(
            f"text_encoder folder {name} does not exist; point text_encoder at a local folder written by "
            "save_pretrained, or at a hub id (org/name: read from the local Hugging Face cache offline, fetched "
            "online)"
        )
    try:
        tokenizer = AutoTokenizer.from_pretrained(name)
        model = AutoModel.from_pretrained(name)
    except pickle.UnpicklingError:  # transformers' weights_only=True refusal, whose hint is to load it unsafely
        raise CorruptFileError(
            f"text_encoder {name} holds weights that are not loadable weights: a pickle that would run code when "
            "loaded, or a damaged file. Give a folder whose weights are model.safetensors (or a weights-only torch "
            "file), e.g. re-saved with save_pretrained in an environment you trust"
        ) from None
    except OSError as err:
        raise MissingFileError(
            f"no text model {name!r} could be loaded ({err}). Give it one of three ways: (1) a local folder "
            "written by save_pretrained, (2) the local Hugging Face cache (download once online, then "
            "HF_HUB_OFFLINE=1 reads it), (3) go online so transformers can fetch it from the hub."
        ) from None
    if getattr(model.config, "is_encoder_decoder", False):  # T5 and friends: the encoder half is the text encoder
        model = model.get_encoder()
    if tokenizer.pad_token is None:  # GPT-style tokenizers have none; any token works under the attention mask
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    return TextEncoder(model, tokenizer, trained_tokenizer=False)


def unknown_words(tokenizer, text: str) -> list[str]:
    """Words of ``text`` the tokenizer maps to its unknown token (they do not crash; they carry no meaning)."""
    encoding = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    spans = zip(encoding["input_ids"], encoding["offset_mapping"])
    return sorted({text[a:b] for i, (a, b) in spans if i == tokenizer.unk_token_id})
