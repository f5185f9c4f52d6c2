"""What the configurations of Hugging Face models share across tasks: where a model comes from
(``init``: a pretrained name or folder, a checkpoint, or random from a config) and which of those
fields a run does not use. Nothing here imports Transformers."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from ..config import require


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
    refuses is one line naming ``<where>.config``."""
    from ..config import ConfigError

    settings = dict(settings)
    model_type = settings.pop("model_type")
    try:
        hf_config = transformers.AutoConfig.for_model(model_type, **settings, **(extra or {}))
        return auto.from_config(hf_config, **remote)
    except (ValueError, TypeError, KeyError) as error:
        raise ConfigError(f"{where}.config: {str(error).splitlines()[0][:200]}") from None


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
    from ..config import ConfigError
    from .image.models import read_weights

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


def model_limits(hf_config: dict[str, Any]) -> tuple[int | None, int | None]:
    """A Transformers config's vocabulary size and number of positions (``max_position_embeddings``,
    or GPT-2's ``n_positions``), None where it gives none."""
    vocabulary = hf_config.get("vocab_size")
    positions = hf_config.get("max_position_embeddings") or hf_config.get("n_positions")
    return (vocabulary if isinstance(vocabulary, int) else None, positions if isinstance(positions, int) else None)


def build_on_meta(transformers: Any, auto: Any, settings: dict[str, Any], where: str,
                  extra: dict[str, Any] | None = None, **remote: Any) -> None:
    """Build the model a config's ``settings`` describe on the meta device (no memory, no weights),
    so that what Transformers refuses only when it builds a model (an unknown ``model_type``, a
    width its heads do not divide) is one line naming ``<where>.config`` before any work."""
    import torch

    from ..config import ConfigError

    settings = dict(settings)
    model_type = settings.pop("model_type", None)
    if not isinstance(model_type, str):
        raise ConfigError(f"{where}.config: gives no model_type")
    try:
        hf_config = transformers.AutoConfig.for_model(model_type, **settings, **(extra or {}))
        with torch.device("meta"):
            auto.from_config(hf_config, **remote)
    except (ValueError, TypeError, KeyError, AttributeError, AssertionError) as error:
        first = (str(error).strip().splitlines() or [type(error).__name__])[0][:200]
        if "model_type" in first or "Unrecognized" in first:
            first = f"unknown model_type {model_type!r} ({first})"
        raise ConfigError(f"{where}.config: {first}") from None


def check_weights_folder(folder: Path, where: str) -> None:
    """A ``save_pretrained`` folder whose weights are PyTorch pickles (``*.bin``, no safetensors) must
    hold tensors only: each is read with ``weights_only`` now, so an unsafe or damaged file is one
    line naming it before any work (Transformers would refuse it later, in several lines)."""
    from ..config import ConfigError
    from ..files import IntegrityError, load_verified

    if not folder.is_dir() or any(folder.glob("*.safetensors")):
        return
    for path in sorted(folder.glob("*.bin")):
        try:
            load_verified(path)
        except (IntegrityError, Exception) as error:  # noqa: B014  (an unpickling error names the global)
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
    from ..config import ConfigError

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
