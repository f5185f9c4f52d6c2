"""Fused students: members of one architecture trained as one stacked model (``fuse: true``).

Their parameters and buffers are stacked (``torch.func.stack_module_state``) and one vmapped
``functional_call`` computes every member's logits in one pass of batched kernels instead of one pass
per member; each member then computes its own loss (its temperature, policy, objective and weights,
in its own random stream), the summed loss is differentiated once (each member's parameters receive
exactly their own loss's gradient), and each member steps its own optimizer, with its own learning
rate, schedule, clipping and state, on views of the stacked tensors.

Nothing of a member changes form: at each epoch's start its weights, buffers and optimizer state are
stacked, at its end written back into the member's own module and optimizer, before evaluation and
checkpointing; so checkpoints are a plain member's, and a fused cohort resumes unfused and back.
Members fuse when they share the model configuration and the optimizer, take one phase, and their
model draws no random numbers in its forward pass (no dropout or drop-path: under ``vmap`` the
members could not keep their own streams); the others train unfused beside them. Results agree with
unfused training to float32 rounding (batched kernels reduce in another order), not bit for bit.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import torch
from torch import Tensor, nn

from ..config import to_dict
from .member import Member, build_optimizer


def fusable(member: Member) -> bool:
    """Whether ``member`` can train inside a fused group (see the module docstring)."""
    if not member.model.fuses or member.phase_one is not None:  # see ModelAdapter.fuses
        return False
    return not any(isinstance(m, nn.modules.dropout._DropoutNd) and m.p > 0 for m in member.student.modules())


def fused_groups(members: list[Member]) -> tuple[list["FusedGroup"], list[Member]]:
    """``members`` as fused groups of two or more (same model configuration and optimizer) and the
    members that train unfused."""
    groups: dict[str, list[Member]] = {}
    alone: list[Member] = []
    for member in members:
        if not fusable(member):
            alone.append(member)
            continue
        key = json.dumps({"model": to_dict(member.config.model), "optimizer": member.config.optimizer.name},
                         sort_keys=True, default=str)
        groups.setdefault(key, []).append(member)
    fused = []
    for group in groups.values():
        if len(group) >= 2:
            fused.append(FusedGroup(group))
        else:
            alone.extend(group)
    return fused, alone


class FusedGroup:
    """Members of one architecture trained as one stacked model for one epoch."""

    def __init__(self, members: list[Member]) -> None:
        self.members = members
        self.base = copy.deepcopy(members[0].student).to("meta")  # the architecture, without storage
        self.names = [name for name, _ in members[0].student.named_parameters()]
        self.params: dict[str, Tensor] = {}
        self.buffers: dict[str, Tensor] = {}
        self.optimizers: list[torch.optim.Optimizer] = []
        self.views: list[list[Tensor]] = []

    def begin_epoch(self) -> None:
        """Stack the members' weights, buffers and optimizer states; each member gets an optimizer
        over views of the stacked weights, with its own state and settings."""
        from torch.func import stack_module_state

        self.params, self.buffers = stack_module_state([m.student for m in self.members])
        self.optimizers, self.views = [], []
        for index, member in enumerate(self.members):
            views = {name: self.params[name][index].detach().requires_grad_(True) for name in self.names}
            holder = _Holder(member.student, views)
            optimizer = build_optimizer(member.config.optimizer, holder, member.policy.parameters())
            optimizer.load_state_dict(member.optimizer.state_dict())
            self.optimizers.append(optimizer)
            self.views.append(list(views.values()) + member.policy.parameters())
        for member in self.members:
            member.state.derived["fused"] = True

    def forward(self, batch: Any) -> Tensor:
        """Every member's logits ``[M, B, C]`` in one vmapped pass."""
        from torch.func import functional_call, vmap

        def one(params: dict[str, Tensor], buffers: dict[str, Tensor], inputs: Any) -> Tensor:
            return functional_call(self.base, (params, buffers), (inputs,))

        self.base.train()
        fused = _Fused(lambda inputs: vmap(one, in_dims=(0, 0, None))(self.params, self.buffers, inputs))
        adapter = self.members[0].model
        module, adapter.module = adapter.module, fused
        try:
            with self.members[0].runtime.autocast():
                return adapter(batch)
        finally:
            adapter.module = module

    def train_step(self, batch: Any, teacher_logits: Tensor | None, epoch: int) -> None:
        """One batch for every member: one fused forward, each member's loss in its own random
        stream, one backward, then each member's clipping, optimizer and schedule step, policy update."""
        logits = self.forward(batch)
        parts = []
        for index, member in enumerate(self.members):
            with member.own_rng():
                parts.append(member.loss(batch, logits[index], teacher_logits, epoch))
        for tensor in self.params.values():
            tensor.grad = None
        for member in self.members:
            for parameter in member.policy.parameters():
                parameter.grad = None
        torch.stack([loss for loss, _, _ in parts]).sum().backward()
        for index, (member, (loss, temperature, member_logits)) in enumerate(zip(self.members, parts)):
            for name, view in zip(self.names, self.views[index]):
                grad = self.params[name].grad
                view.grad = None if grad is None else grad[index]
            with member.own_rng():
                member.step(self.optimizers[index], self.views[index], loss, temperature, batch,
                            member_logits.detach(), teacher_logits, epoch)

    def end_epoch(self) -> None:
        """Write the stacked weights, buffers and optimizer states back into each member."""
        with torch.no_grad():
            for index, member in enumerate(self.members):
                for name, parameter in member.student.named_parameters():
                    parameter.copy_(self.params[name][index])
                for name, buffer in member.student.named_buffers():
                    if name in self.buffers:
                        buffer.copy_(self.buffers[name][index])
                rates = [group["lr"] for group in member.optimizer.param_groups]  # the schedule's next rate
                member.optimizer.load_state_dict(self.optimizers[index].state_dict())
                for group, rate in zip(member.optimizer.param_groups, rates):
                    group["lr"] = rate


class _Holder(nn.Module):
    """Stands in for a member's model when its optimizer is built over views of the stacked weights:
    ``parameters()`` gives the views in the model's own order (so optimizer states map one to one)."""

    def __init__(self, model: nn.Module, views: dict[str, Tensor]) -> None:
        super().__init__()
        self._views = [views[name] for name, _ in model.named_parameters()]

    def parameters(self, recurse: bool = True):  # type: ignore[override]
        return iter(self._views)


class _Fused(nn.Module):
    """A module whose forward is the vmapped pass (what the member's adapter calls)."""

    def __init__(self, forward) -> None:
        super().__init__()
        self._forward = forward

    def forward(self, inputs: Any) -> Tensor:  # type: ignore[override]
        return self._forward(inputs)
