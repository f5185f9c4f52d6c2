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
