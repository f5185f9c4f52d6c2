"""What the Hugging Face tasks (text classification, causal language models) share: where a model comes
from (``init``: a pretrained name or folder, a checkpoint, or random from a config) and which of those
fields a run does not use; Transformers imported at first use; tokenizers (loaded, identified, the one a
model comes with); a model's config read without its weights and built on the meta device; ragged token
rows padded into a batch. Transformers is imported only inside the functions that need it."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Callable

import torch
from torch import Tensor

from ..config import ConfigError, require
from ..weights import WeightsError, read_weights


def validate_source(config: Any, path: str, example_type: str) -> None:
    """``name``, ``init``, ``weights`` and ``config`` agree: a random model has a config (with its
    ``model_type``, e.g. ``example_type``) and no weights; a checkpoint has weights that exist (or
    that the study's preparation writes)."""
    require(bool(config.name), f"{path}.name", "give a Hugging Face model name, a folder, or a label")
    if config.init == "random":
        require(isinstance(config.config, dict) and isinstance(config.config.get("model_type"), str), f"{path}.config",
                f"init 'random' builds the model from a config: give at least its model_type (e.g. {example_type})")
        require(not config.weights, f"{path}.weights",
                f"{config.weights!r} is given but init is 'random'; set init: checkpoint to use it")
    else:
        require(config.config is None, f"{path}.config", f"is only for init 'random'; init is {config.init!r}")
    if config.init == "checkpoint":
        require(bool(config.weights), f"{path}.weights", "init 'checkpoint' needs a weights path")
        if not config.prepared:
            require(Path(config.weights).expanduser().exists(), f"{path}.weights", f"{config.weights!r} does not exist")


def source_unused_fields(config: Any) -> set[str]:
    """The source fields a model's run does not use: a prepared model's weights path (the
    preparation's id says it), an empty ``config`` and ``trust_remote_code`` left off."""
    unused = {"prepared"} if config.prepared is None else {"weights"}
    if config.config is None:
        unused.add("config")
    if not config.trust_remote_code:
        unused.add("trust_remote_code")
    return unused


def from_settings(transformers: Any, auto: Any, settings: dict[str, Any], where: str,
                  extra: dict[str, Any] | None = None, **remote: Any) -> Any:
    """A randomly initialised model of class ``auto`` (e.g. ``AutoModelForCausalLM``) from a
    config's ``settings`` (with its ``model_type``) and ``extra`` fields; a config Transformers
    refuses, when it reads it or when it builds the model (an unknown ``model_type``, a width its
    heads do not divide), is one line naming ``<where>.config``."""
    settings = dict(settings)
    model_type = settings.pop("model_type", None)
    if not isinstance(model_type, str):
        raise ConfigError(f"{where}.config: gives no model_type")
    try:
        hf_config = transformers.AutoConfig.for_model(model_type, **settings, **(extra or {}))
        return auto.from_config(hf_config, **remote)
    except (ValueError, TypeError, KeyError, AttributeError, AssertionError) as error:
        first = (str(error).strip().splitlines() or [type(error).__name__])[0][:200]
        if "model_type" in first or "Unrecognized" in first:
            first = f"unknown model_type {model_type!r} ({first})"
        raise ConfigError(f"{where}.config: {first}") from None


class FileFreeData:
    """What a token dataset answers where an image dataset has files to count: no size estimate of
    data not on disk yet (``plan`` says so) and no split file (the cohort key asks every dataset)."""

    def expected_sizes(self) -> None:
        return None

    @property
    def split_file(self) -> None:
        return None


class NotAugmented:
    """Token data is not augmented: the stream is a seeded permutation of the training split."""

    def unused_fields(self) -> set[str]:
        return set()


def from_checkpoint(transformers: Any, auto: Any, weights: str, where: str, kind: str,
                    extra: dict[str, Any] | None = None, check: Callable[[dict[str, Any]], None] | None = None,
                    **remote: Any) -> Any:
    """A model of class ``auto`` rebuilt from a kdtemp checkpoint at ``weights``: its recorded
    Transformers config, with ``extra`` fields, and its weights. ``check(header)`` sees the
    checkpoint's header first (e.g. its class names). A file that records no config is one line
    naming ``<where>.weights`` (``kind``: what it should hold)."""
    state, meta = read_weights(weights)
    if check is not None:
        check(meta)
    recorded = meta.get("hf_config")
    if not isinstance(recorded, dict):
        raise ConfigError(f"{where}.weights: {weights!r} is not a kdtemp checkpoint of a {kind} (it records no "
                          "hf_config); give a save_pretrained folder instead")
    settings = dict(recorded)
    hf_config = transformers.AutoConfig.for_model(settings.pop("model_type"), **{**settings, **(extra or {})})
    module = auto.from_config(hf_config, **remote)
    module.load_state_dict(state)
    return module


def model_label(config: Any) -> str:
    """A Hugging Face model config's name for ``plan`` and reports: a model built from a config is
    named by its shape (``bert 4x256``: type, layers and width), after its ``name`` when the user gave
    one (the default name is a hub model's, which a random model is not); any other, by ``name``."""
    if config.init != "random" or not isinstance(config.config, dict):
        return config.name
    settings = config.config
    layers = settings.get("num_hidden_layers", settings.get("n_layer"))
    width = settings.get("hidden_size", settings.get("n_embd", settings.get("d_model")))
    shape = f"{settings.get('model_type')} {layers}x{width}" if layers and width else str(settings.get("model_type"))
    default = type(config).__dataclass_fields__["name"].default
    return shape if config.name == default else f"{config.name} ({shape})"


def forward_flops(config: Any, auto: str, tokens: int, extra: dict[str, Any] | None = None) -> float | None:
    """About the FLOPs of one forward pass over ``tokens`` tokens: 2 per parameter per token, the
    input embedding (a lookup) left out and the output projection counted even when tied to it
    (attention's own products, which grow with the length, are left out: a lower bound). The model is
    built on the meta device from its config; None where the config cannot be read yet (a model a
    study prepares)."""
    settings = hf_config(config, "model")
    if settings is None:
        return None
    module = build_on_meta(config, settings, "model", auto, extra)
    parameters = sum(p.numel() for p in module.parameters())
    embedding = module.get_input_embeddings()
    parameters -= embedding.weight.numel() if embedding is not None else 0
    head = module.get_output_embeddings()
    if head is not None and embedding is not None and head.weight is embedding.weight:
        parameters += head.weight.numel()
    return 2.0 * parameters * tokens


def model_limits(hf_config: dict[str, Any]) -> tuple[int | None, int | None]:
    """A Transformers config's vocabulary size and number of positions (``max_position_embeddings``,
    or GPT-2's ``n_positions``), None where it gives none."""
    vocabulary = hf_config.get("vocab_size")
    positions = hf_config.get("max_position_embeddings") or hf_config.get("n_positions")
    return (vocabulary if isinstance(vocabulary, int) else None, positions if isinstance(positions, int) else None)


def check_weights_folder(folder: Path, where: str) -> None:
    """A ``save_pretrained`` folder whose weights are PyTorch pickles (``*.bin``, no safetensors) must
    hold tensors only: each is unpickled with ``weights_only`` onto the meta device now (its tensors'
    data is not read), so an unsafe or damaged file is one line naming it before any work
    (Transformers would refuse it later, in several lines)."""
    if not folder.is_dir() or any(folder.glob("*.safetensors")):
        return
    for path in sorted(folder.glob("*.bin")):
        try:
            torch.load(path, map_location="meta", weights_only=True)
        except Exception as error:  # noqa: BLE001  (an unpickling error names the global; any other: damaged)
            detail = str(error).strip().splitlines()[-1][:160] if str(error).strip() else type(error).__name__
            raise ConfigError(f"{where}: {str(path)!r} holds Python objects or is damaged ({detail}); kdtemp loads "
                              "weights with weights_only=True and never runs code from a file: save the model with "
                              "safetensors (save_pretrained's default)") from None


UNKNOWN_RATE_LIMIT = 0.05
"""The share of a data sample's tokens a tokenizer may read as its unknown token."""
SAMPLE_TEXTS = 200


def check_tokenizer_reads(tokenizer: Any, name: str, texts: list[str], where: str = "data.tokenizer") -> None:
    """Refuse a tokenizer that reads the data as noise, measured on the first :data:`SAMPLE_TEXTS`
    texts: more than :data:`UNKNOWN_RATE_LIMIT` of the tokens its unknown token (a vocabulary that
    lacks the data's words), or a vocabulary of fewer than two tokens, or every text read as one and
    the same token (a tokenizer built from files it did not understand)."""
    sample = [text for text in texts[:SAMPLE_TEXTS] if text.strip()]
    if not sample:
        return
    if len(tokenizer) < 2:
        raise ConfigError(f"{where}: {name!r} has {len(tokenizer)} token(s) in its vocabulary; it cannot represent "
                          "text (were its vocabulary files read?)")
    ids = [i for row in tokenizer(sample, add_special_tokens=False)["input_ids"] for i in row]
    if not ids:
        raise ConfigError(f"{where}: {name!r} reads the first {len(sample)} texts of the data as no tokens at all")
    unknown = tokenizer.unk_token_id
    rate = sum(1 for i in ids if i == unknown) / len(ids) if unknown is not None else 0.0
    if rate > UNKNOWN_RATE_LIMIT:
        raise ConfigError(f"{where}: {name!r} reads {rate:.0%} of the tokens of the data's first {len(sample)} texts "
                          f"as its unknown token {tokenizer.unk_token!r} (allowed: at most "
                          f"{UNKNOWN_RATE_LIMIT:.0%}); its vocabulary ({len(tokenizer)} tokens) lacks the data's words")
    if len(set(ids)) == 1 and len(ids) > len(sample):
        raise ConfigError(f"{where}: {name!r} reads the data's first {len(sample)} texts as one and the same token "
                          f"(id {ids[0]}); it cannot represent them")


def transformers_module(task: str = "text_classification"):
    """Transformers, imported at first use (one line naming the extra when it is missing)."""
    try:
        import transformers
    except ImportError:
        extra = "lm" if task == "causal_lm" else "text"
        raise ConfigError(f"task: {task} needs Hugging Face Transformers; install it with: "
                          f"pip install 'kdtemp[{extra}]'") from None
    transformers.logging.set_verbosity_error()  # its own warnings (a new head, ...) are kdtemp's lines here
    return transformers


def from_hub(load, name: str, where: str, **kwargs):
    """``load(name, ...)`` from the local cache, else from the hub; one line when neither has it."""
    try:
        return load(name, local_files_only=True, **kwargs)
    except OSError:
        pass
    try:
        return load(name, **kwargs)
    except OSError as error:
        first = str(error).strip().splitlines()[0][:160] if str(error).strip() else type(error).__name__
        raise ConfigError(f"{where}: {name!r} is neither in the local Hugging Face cache nor reachable on the hub "
                          f"(offline?): {first}") from None


BPE_FILES = ("encoder.json", "vocab.bpe")
"""GPT-2's byte-level BPE as OpenAI published it (Hugging Face's ``vocab.json`` and ``merges.txt`` too)."""
WORDPIECE_FILE = "vocab.txt"
"""BERT's WordPiece vocabulary, one token a line."""
_BPE_NAMES = {"encoder.json": "vocab.bpe", "vocab.json": "merges.txt"}
_HF_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")


def vocabulary_files(path: Path) -> tuple[str, tuple[Path, ...]] | None:
    """``("bpe", (vocab, merges))`` or ``("wordpiece", (vocab.txt,))`` for a folder that holds such files
    and no Hugging Face tokenizer files, or for one of the files itself; None otherwise."""
    if path.is_dir():
        if any((path / name).exists() for name in _HF_TOKENIZER_FILES):
            return None
        for vocab, merges in _BPE_NAMES.items():
            if (path / vocab).is_file() and (path / merges).is_file():
                return "bpe", (path / vocab, path / merges)
        return ("wordpiece", (path / WORDPIECE_FILE,)) if (path / WORDPIECE_FILE).is_file() else None
    pairs = {**_BPE_NAMES, **{merges: vocab for vocab, merges in _BPE_NAMES.items()}}
    if path.name in pairs:
        vocab, merges = (path.name, pairs[path.name]) if path.name in _BPE_NAMES else (pairs[path.name], path.name)
        return "bpe", (path.parent / vocab, path.parent / merges)
    if path.name == WORDPIECE_FILE or path.suffix == ".txt":
        return "wordpiece", (path,)
    return None


def tokenizer_from_files(kind: str, files: tuple[Path, ...], where: str = "data.tokenizer"):
    """A fast tokenizer built by ``tokenizers`` from vocabulary files (:func:`vocabulary_files`): GPT-2's
    byte-level BPE with ``<|endoftext|>`` as its end-of-sequence token, or BERT's uncased WordPiece with
    ``[CLS] ... [SEP]``. A file that is not such a vocabulary is one line."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    transformers = transformers_module()
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise ConfigError(f"{where}: {missing[0]} does not exist ({kind} needs "
                          f"{' and '.join(f.name for f in files)})")
    if kind == "bpe":
        vocab, merges = files
        try:
            model = models.BPE.from_file(str(vocab), str(merges))
        except Exception as error:  # noqa: BLE001  (tokenizers raises plain Exceptions)
            raise ConfigError(f"{where}: {vocab.name} and {merges.name} are not a BPE vocabulary and merges "
                              f"({str(error).splitlines()[0][:120]})") from None
        tokenizer = Tokenizer(model)
        tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tokenizer.decoder = decoders.ByteLevel()
        end = "<|endoftext|>"
        if tokenizer.token_to_id(end) is None:
            raise ConfigError(f"{where}: {vocab} has no {end} token; a GPT-2 vocabulary ends its texts with it")
        return transformers.PreTrainedTokenizerFast(tokenizer_object=tokenizer, eos_token=end, bos_token=end,
                                                    unk_token=end)
    from tokenizers.implementations import BertWordPieceTokenizer

    (vocab,) = files
    lines = vocab.read_text(encoding="utf-8", errors="replace").splitlines()
    special = ("[UNK]", "[CLS]", "[SEP]", "[PAD]")
    absent = [token for token in special if token not in lines]
    if absent or any(" " in line.strip() for line in lines):
        why = f"no {absent[0]} line" if absent else "a line holds more than one token"
        raise ConfigError(f"{where}: {vocab} is not a WordPiece vocabulary ({why}); give a Hugging Face tokenizer "
                          "folder, GPT-2's encoder.json and vocab.bpe, or BERT's vocab.txt")
    wordpiece = BertWordPieceTokenizer(str(vocab), lowercase=True)
    return transformers.PreTrainedTokenizerFast(tokenizer_object=wordpiece._tokenizer, unk_token="[UNK]",
                                                cls_token="[CLS]", sep_token="[SEP]", pad_token="[PAD]",
                                                mask_token="[MASK]" if "[MASK]" in lines else None)


def load_tokenizer(name: str, where: str = "data.tokenizer"):
    """The fast tokenizer ``name``: a hub name, a local tokenizer folder, or vocabulary files by path
    (:func:`vocabulary_files`: GPT-2's ``encoder.json`` + ``vocab.bpe``, BERT's ``vocab.txt``, or a folder
    holding them). A folder or file it cannot make a tokenizer of is one line."""
    path = Path(name).expanduser()
    files = vocabulary_files(path) if path.exists() else None
    if files is not None:
        return tokenizer_from_files(*files, where=where)
    if path.is_file():
        raise ConfigError(f"{where}: {name!r} is not a tokenizer file; give a Hugging Face tokenizer folder, "
                          f"GPT-2's {' and '.join(BPE_FILES)}, or BERT's {WORDPIECE_FILE}")
    transformers = transformers_module()
    if path.is_dir():
        try:
            return transformers.AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        except Exception as error:  # noqa: BLE001  (Transformers raises many kinds here; each is one line)
            first = (str(error).strip().splitlines() or [type(error).__name__])[0][:160]
            raise ConfigError(f"{where}: {name!r} is not a tokenizer folder Transformers can load (it needs "
                              f"tokenizer.json, or its tokenizer class's vocabulary files): {first}") from None
    return from_hub(transformers.AutoTokenizer.from_pretrained, name, where)


def recorded_tokenizer(config: Any, where: str = "model") -> str | None:
    """The tokenizer a model's weights come with: a kdtemp checkpoint's recorded one, a folder with
    tokenizer files, or the hub name of a pretrained model (None for a random one). A weights file
    that cannot be read safely is one line naming ``<where>.weights`` (not a reason to ask the hub
    for ``name``)."""
    if config.init == "random":
        return None
    if config.init == "pretrained":
        return config.name
    path = Path(config.weights).expanduser()
    if path.is_dir():
        return str(path) if any((path / f).exists() for f in ("tokenizer.json", "tokenizer_config.json")) else config.name
    if path.is_file():
        try:
            return read_weights(path)[1].get("tokenizer") or config.name
        except WeightsError as error:
            raise ConfigError(f"{where}.weights: {error}") from None
    return config.name  # a prepared model's file is written by the study's first stage


def tokenizer_source(shared: Any, members: list[Any] | None = None) -> str:
    """The tokenizer the cohort's data is tokenised with: ``data.tokenizer``, else the teacher's (a
    cohort without a teacher, a teacher's preparation: its model's)."""
    if shared.data.tokenizer:
        return shared.data.tokenizer
    members = getattr(shared, "members", []) if members is None else members
    models = [(shared.teacher, "teacher")] if shared.teacher is not None else \
        [(m.model, "student.model") for m in members]
    for model, where in models:
        source = recorded_tokenizer(model, where)
        if source is not None:
            return source
    raise ConfigError("data.tokenizer: the teacher (a random model from a config) comes with no tokenizer; name one "
                      "(a hub name or a folder)")


def tokenizer_identity(tokenizer: Any, name: str) -> str:
    """The tokenizer's name and a digest of its vocabulary and rules (what its ids depend on)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:  # its rules and vocabulary; not the truncation and padding a call last set
        rules = {k: v for k, v in json.loads(backend.to_str()).items() if k not in ("truncation", "padding")}
        text = json.dumps(rules, sort_keys=True)
    else:
        text = json.dumps(tokenizer.get_vocab(), sort_keys=True)
    return f"{name}@{hashlib.sha1(text.encode()).hexdigest()[:16]}"


def padded_rows(ids: Tensor, offsets: Tensor, rows: Tensor, pad_id: int, width: int | None = None,
                type_ids: Tensor | None = None) -> dict[str, Tensor]:
    """``input_ids`` and ``attention_mask`` (and ``token_type_ids``) of the ragged sequences ``rows``
    (``ids`` one after another, each beginning at ``offsets``), right-padded to the longest of them
    (``width``, when the caller knows it from the host, so the device is not asked); gathered on
    ``ids``' device in a few kernels."""
    starts, lengths = offsets[rows], (offsets[1:] - offsets[:-1])[rows]
    if width is None:
        width = int(lengths.max()) if len(rows) else 1
    positions = torch.arange(width, device=ids.device)
    mask = positions.unsqueeze(0) < lengths.unsqueeze(1)
    index = (starts.unsqueeze(1) + positions.unsqueeze(0)).clamp(max=max(len(ids) - 1, 0))
    pad = torch.full((), pad_id, dtype=ids.dtype, device=ids.device)
    inputs = {"input_ids": torch.where(mask, ids[index], pad).long(), "attention_mask": mask.long()}
    if type_ids is not None:
        inputs["token_type_ids"] = torch.where(mask, type_ids[index], 0).long()
    return inputs


def hf_config(config: Any, field: str) -> dict[str, Any] | None:
    """The model's Transformers config as a dict, read without its weights (None: written later by
    the study's preparation stage)."""
    if config.init == "random":
        return dict(config.config)
    if config.init == "checkpoint":
        path = Path(config.weights).expanduser()
        if config.prepared and not path.exists():
            return None
        if path.is_file():
            try:
                return read_weights(path)[1].get("hf_config")
            except WeightsError as error:
                raise ConfigError(f"{field}.weights: {error}") from None
        name = str(path)
    else:
        name = config.name
    transformers = transformers_module()
    loader = transformers.AutoConfig.from_pretrained
    remote = {"trust_remote_code": True} if config.trust_remote_code else {}
    where = f"{field}.weights" if config.init == "checkpoint" else f"{field}.name"
    folder = Path(name).expanduser()
    if folder.is_dir():
        check_weights_folder(folder, where)
    try:
        return loader(name, local_files_only=True, **remote).to_dict()
    except OSError:
        if folder.is_dir():
            raise ConfigError(f"{where}: {name!r} is not a model folder Transformers can read (no usable "
                              "config.json)") from None
    except ValueError as error:
        raise _config_refused(error, name, where, field) from None
    try:
        return loader(name, **remote).to_dict()
    except ValueError as error:
        raise _config_refused(error, name, where, field) from None
    except OSError as error:
        first = (str(error).strip().splitlines() or [type(error).__name__])[0][:160]
        raise ConfigError(f"{where}: {name!r} is neither in the local Hugging Face cache nor reachable on the hub "
                          f"(offline?): {first}") from None


def _config_refused(error: ValueError, name: str, where: str, field: str) -> ConfigError:
    """Transformers' refusal of a model's config as one line: remote code kdtemp does not run, or an
    unknown ``model_type``."""
    text = str(error)
    if "trust_remote_code" in text:
        return ConfigError(f"{where}: {name!r} needs its own Python code (custom modelling files); kdtemp runs no "
                           f"code from a model unless {field}.trust_remote_code: true")
    first = (text.strip().splitlines() or [type(error).__name__])[0][:200]
    return ConfigError(f"{where}: {name!r} has a config Transformers cannot read: {first}")


def build_on_meta(config: Any, hf: dict[str, Any], field: str, auto: str, extra: dict[str, Any] | None = None) -> Any:
    """The model the Transformers config ``hf`` describes, of Transformers' ``auto`` class, built on
    the meta device (no memory, no weights) by :func:`from_settings`: what Transformers refuses only
    when it builds a model is one line naming ``<field>.config`` before any work."""
    transformers = transformers_module()
    remote = {"trust_remote_code": True} if config.trust_remote_code else {}
    with torch.device("meta"):
        return from_settings(transformers, getattr(transformers, auto), hf, field, extra, **remote)
