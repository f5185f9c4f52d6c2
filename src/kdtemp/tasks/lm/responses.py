"""Responses a model generates for training prompts: sequence-level KD's teacher responses (made once,
cached, resumable) and an on-policy member's own samples (made at each of its on-policy steps).

The teacher's responses are cached under the data cache in ``lm/responses/<key>/``, ``key`` a digest
of the teacher's weights, the prompts' ids, the generation settings, the EOS id and ``max_length``:
a second study (or a resumed one) with the same teacher, data and settings reads them instead of
generating. They are written in shards of :data:`SHARD` prompts, each atomically with its sha256 in
``manifest.json``: a kill during generation leaves whole shards, and the next run generates only the
shards that are missing; a shard whose checksum does not match is generated again. Shard ``i`` samples
from a stream seeded with ``(seed, i)``, so a resumed generation draws what an uninterrupted one draws.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ...files import atomic_write_text, content_digest, warn
from .config import Generation
from .data import LMSplit

SHARD = 64
"""Prompts per cached shard of teacher responses."""
VERSION = 1


def shard_seed(seed: int, shard: int) -> int:
    """The seed of shard ``shard``'s sampling stream (independent of how many shards ran before)."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{shard}".encode()).digest()[:7], "little")


def with_eos(generated: list[tuple[list[int], bool]], eos_id: int) -> list[list[int]]:
    """Generated responses as training targets: with the EOS token when the model ended them."""
    return [ids + [eos_id] if ended else ids for ids, ended in generated]


def cache_key(teacher: Any, prompts: list[list[int]], generation: Generation, eos_id: int, max_length: int) -> str:
    text = json.dumps({"version": VERSION, "teacher": content_digest(teacher.module.state_dict()),
                       "prompts": hashlib.sha256(json.dumps(prompts).encode()).hexdigest(),
                       "generation": {k: v for k, v in asdict(generation).items() if k != "batch_size"},
                       "batch_size": generation.batch_size, "eos": eos_id, "max_length": max_length}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def teacher_responses(teacher: Any, train: LMSplit, generation: Generation, eos_id: int, max_length: int,
                      runtime: Any, cache_dir: Path, progress: bool | str = False) -> LMSplit:
    """``train``'s prompts with the responses ``teacher`` generates for them (module docstring), cached."""
    prompts = train.prompts()
    folder = cache_dir / "lm" / "responses" / cache_key(teacher, prompts, generation, eos_id, max_length)
    manifest_path = folder / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {"shards": {}}
    shards = range(0, len(prompts), SHARD)
    todo = []
    responses: dict[int, list[list[int]]] = {}
    for index, start in enumerate(shards):
        path = folder / f"shard-{index:05d}.json"
        text = path.read_text() if path.is_file() else None
        if text is not None and manifest["shards"].get(path.name) == _digest(text):
            responses[index] = json.loads(text)
        else:
            if text is not None:
                warn(f"the cached responses {path} do not match their checksum; generating them again")
            todo.append((index, start))
    if todo and progress:
        print(f"responses: the teacher generates {sum(min(SHARD, len(prompts) - s) for _, s in todo):,} of "
              f"{len(prompts):,} training responses ({len(shards) - len(todo)} of {len(shards)} shards cached in {folder})")
    for index, start in todo:
        generated = teacher.generate_ids(prompts[start:start + SHARD], generation, shard_seed(generation.seeds[0], index),
                                         train.pad_id, eos_id, runtime, max_length)
        responses[index] = with_eos(generated, eos_id)
        text = json.dumps(responses[index])
        atomic_write_text(folder / f"shard-{index:05d}.json", text)
        manifest["shards"][f"shard-{index:05d}.json"] = _digest(text)
        manifest.update(records=len(prompts), shard_size=SHARD, generation=asdict(generation), eos=eos_id,
                        max_length=max_length)
        atomic_write_text(manifest_path, json.dumps(manifest, indent=1, sort_keys=True))
    ordered = [r for index in range(len(shards)) for r in responses[index]]
    return LMSplit.from_pairs(prompts, ordered, train.pad_id, train.ids.device)
