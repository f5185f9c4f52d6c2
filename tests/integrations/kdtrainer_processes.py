"""One KDTrainer run, launched by ``tests/integrations/test_kdtrainer_processes.py`` as one process or as
``torch.distributed.run --nproc_per_node 2`` (gloo, CPU): DDP or FSDP (``full_shard``). The global batch is
4 examples per optimizer step in every mode (one process: 2 a micro-batch, 2 accumulated; two processes: 2
each), read in order, so every mode sees the same examples in the same steps. SGD, DTS over 4 steps.

Writes ``<out>/rank<r>.json``: the temperature each optimizer step used (this rank's), the logged
``kd_temperature`` values (the T each step used), whether the teacher was in eval mode without gradients, and from rank 0 the
student's parameters after training (gathered whole under FSDP).

    python kdtrainer_processes.py MODE OUT      # MODE: single, ddp or fsdp
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch
import transformers
from torch.utils.data import SequentialSampler

from kdtemp.integrations.hf_trainer import KDTrainer

VOCAB, LENGTH, EXAMPLES = 64, 12, 16


def tiny_gpt2(seed: int) -> transformers.GPT2LMHeadModel:
    torch.manual_seed(seed)
    config = transformers.GPT2Config(n_layer=1, n_embd=32, n_head=2, vocab_size=VOCAB, n_positions=64,
                                     resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    return transformers.GPT2LMHeadModel(config)


def examples() -> list[dict[str, list[int]]]:
    """Sequences of LENGTH tokens whose last 1 to 8 tokens are the response (the prompt's labels -100):
    the micro-batches of a step hold different numbers of targets."""
    generator = torch.Generator().manual_seed(0)
    rows = []
    for index in range(EXAMPLES):
        response = (1, 2, 4, 8)[index % 4] + index % 3
        ids = torch.randint(0, VOCAB, (LENGTH,), generator=generator).tolist()
        rows.append({"input_ids": ids, "attention_mask": [1] * LENGTH,
                     "labels": [-100] * (LENGTH - response) + ids[LENGTH - response:]})
    return rows


class InOrder(KDTrainer):
    """The examples in order (the Trainer shuffles with a sampler that differs between one process and several)."""

    def _get_train_sampler(self, *args, **kwargs):
        return SequentialSampler(self.train_dataset)


class Trace(transformers.TrainerCallback):
    def __init__(self) -> None:
        self.trainer: KDTrainer | None = None
        self.temperatures: list[float] = []

    def on_step_end(self, args, state, control, **kwargs):  # before KDTrainer's own callback moves T
        self.temperatures.append(float(self.trainer.kd_temperature.current()))  # the T this step used


def main(mode: str, out: Path) -> None:
    processes = int(os.environ.get("WORLD_SIZE", "1"))
    settings = dict(output_dir=str(out / "trainer"), per_device_train_batch_size=2,
                    gradient_accumulation_steps=2 if processes == 1 else 1, max_steps=4, report_to=[], use_cpu=True,
                    save_strategy="no", logging_steps=1, disable_tqdm=True, seed=0, optim="sgd", learning_rate=0.5,
                    lr_scheduler_type="constant", max_grad_norm=0.0, warmup_steps=0, weight_decay=0.0,
                    dataloader_drop_last=True)
    if processes > 1:
        settings["ddp_backend"] = "gloo"
    if mode == "fsdp":
        settings.update(fsdp=True)
    trace = Trace()
    trainer = InOrder(model=tiny_gpt2(1), args=transformers.TrainingArguments(**settings), train_dataset=examples(),
                      teacher_model=tiny_gpt2(2), temperature_policy="dts",
                      dts={"initial": 4.0, "minimum": 1.0, "maximum": 8.0},
                      ce_weight=0.3, kd_weight=0.7, chunk_tokens=5, callbacks=[trace])
    trace.trainer = trainer
    trainer.train()
    teacher = trainer.teacher_model
    record = {"temperatures": trace.temperatures, "processes": processes, "fsdp": bool(trainer.is_fsdp_enabled),
              "wrapped": type(trainer.model_wrapped).__name__,
              "logged": [e["kd_temperature"] for e in trainer.state.log_history if "loss" in e],
              "teacher_frozen": (not teacher.training) and not any(p.requires_grad for p in teacher.parameters())}
    state = trainer.accelerator.get_state_dict(trainer.model)  # whole on rank 0, also under FSDP
    rank = trainer.args.process_index
    if rank == 0:
        record["parameters"] = {name: value.float().flatten().tolist() for name, value in state.items()}
    (out / f"rank{rank}.json").write_text(json.dumps(record))
    if torch.distributed.is_initialized():  # every rank done, then the group torn down before the interpreter exits
        torch.distributed.barrier()         # (without it, gloo's threads can abort a rank at exit: SIGABRT)
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]))
