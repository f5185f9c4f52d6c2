"""Language-model distillation, measured side by side in one run (BENCHMARKS.md records the figures).

(a) ``memory``: the peak extra memory of the token loss (forward KL at T = 2, forward and backward)
    chunked (``token_kd_loss``, ``--chunk`` rows at a time) against a plain full-vocabulary
    implementation (``log_softmax`` of ``[N, V]``, autograd), at ``--vocab`` 50,257 and ``--tokens``
    4,096 by default. Each arm runs in its own fresh process; on CPU the peak is the process's peak
    resident memory (``ru_maxrss``) above what it held once the inputs existed, on CUDA
    ``torch.cuda.max_memory_allocated`` above the inputs. Printed twice: all extra memory, and the
    extra memory besides the gradient of the student's logits (``[N, V]``, which any implementation
    returns).
(b) ``cohort``: a cohort of ``--members`` students (different temperatures and divergences) against
    the same students trained one by one (the median of ``--repeats`` alternating runs of each arm),
    with a teacher about 8 times a student's cost per token,
    through the engine (``run_cohort``) on the same tokenised data; wall-clock of each arm and their
    ratio.
(c) ``--device cuda --preset gpt2``: (b) at GPT-2 medium -> GPT-2 shapes (random weights, bf16, the
    GPT-2 vocabulary), ready for a machine with a GPU.
(d) ``responses``: (b) with every member's responses from the teacher (sequence-level KD: generated
    once by the warm-up run and read from the cache by both arms, so the arms time training alone: one
    teacher pass per batch on the teacher's responses, shared by the cohort) and from the member itself
    (on-policy, ``lmbda`` 1: each member samples ``--new-tokens`` per record and the teacher scores them,
    one generation and one teacher pass per member per batch in either arm).

(e) ``cache``: what a teacher-output cache loses (``kdtemp.objectives.teacher_cache``). A GPT-2-shaped
    teacher (2 layers, 128 wide, the real 50,257-token vocabulary) trained ``--teacher-steps`` on the
    responses of MiniLLM's Dolly training data (``--text``: ``../shared/data/text``), and a student of the
    same shape trained a quarter as long; on ``--cache-tokens`` response tokens of Dolly's validation
    records, teacher-forced: the token loss (``T^2`` times the mean over tokens) and its gradient with
    respect to the student's logits, from the live teacher and from each cache design (top-k + 16 tail bins
    at k in {8, 32, 128, V}, as the cache writes and reads them: ``top_k_tail`` with float32 logits,
    ``top_k_tail_f16`` with float16 offsets, ``data.teacher_cache.dtype``'s default; sampled ids at k in
    {8, 32, 128}, forward KL only) at T in {1, 2, 4, 8}, for
    the forward KL, reverse KL and JSD (beta 0.5). Printed: bytes per token, the relative error of the
    loss and of the gradient (``|g_cache - g_live| / |g_live|``), the width of the stated interval of the
    log normaliser, and the teacher's mass in its top k. The trained models are kept in ``--work``.

(f) ``cache-step``: the cohort of (b) trained from the teacher's cache (``data.teacher_cache``, k 32, written
    by a warm-up run) against the same cohort with the live teacher, wall-clock of each (median of
    ``--repeats``, alternating).

(g) ``cache-dolly``: students on the Dolly replica from the live teacher and from its cache (k 128, 32), the same
    seeds; ROUGE-L and perplexity (needs ``--dolly-teacher``, the teacher ``dolly_tiny`` prepares).

    python bench/lm.py [--part memory|cohort|responses|cache|cache-step|cache-dolly|all] [--device cpu] [--preset tiny|gpt2]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import Tensor

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tests"))  # the instruction data and tokenizer builders of the tests

PRESETS = {
    # teacher / student GPT-2 shapes; "tiny" is sized for a CPU, with a teacher ~8x a student per token
    "tiny": {"teacher": {"n_layer": 12, "n_embd": 128, "n_head": 4}, "student": {"n_layer": 1, "n_embd": 128, "n_head": 4},
             "vocab": None, "positions": 128},
    "gpt2": {"teacher": {"n_layer": 24, "n_embd": 1024, "n_head": 16}, "student": {"n_layer": 12, "n_embd": 768, "n_head": 12},
             "vocab": 50257, "positions": 1024},
}


def _rss_bytes() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * resource.getpagesize()


def memory_arm(arm: str, vocab: int, tokens: int, chunk: int, device: str) -> dict:
    """One arm of (a) in this process: extra peak bytes of a forward and backward of the loss."""
    from kdtemp.objectives import token_kd_loss

    torch.manual_seed(0)
    student = torch.randn(tokens, vocab, device=device, requires_grad=True)
    teacher = torch.randn(tokens, vocab, device=device)
    labels = torch.zeros(tokens, dtype=torch.long, device=device)
    gradient = tokens * vocab * 4
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
    else:
        before = _rss_bytes()
    temperature = 2.0
    if arm == "plain":
        p = torch.softmax(teacher / temperature, -1)
        log_p = torch.log_softmax(teacher / temperature, -1)
        log_q = torch.log_softmax(student / temperature, -1)
        loss = temperature ** 2 * (p * (log_p - log_q)).sum(-1).mean()
    else:
        loss = token_kd_loss(student, teacher, labels, temperature, chunk_tokens=chunk)
    loss.backward()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() - before
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before
    return {"arm": arm, "extra": peak, "gradient": gradient, "loss": float(loss)}


def memory(args) -> dict:
    results = {}
    for arm in ("plain", "chunked"):
        command = [sys.executable, __file__, "--memory-arm", arm, "--vocab", str(args.vocab), "--tokens",
                   str(args.tokens), "--chunk", str(args.chunk), "--device", args.device]
        done = subprocess.run(command, capture_output=True, text=True, check=True)
        results[arm] = json.loads(done.stdout.strip().splitlines()[-1])
    plain, chunked = results["plain"], results["chunked"]
    gib = 2 ** 30
    print(f"(a) token loss at V = {args.vocab:,}, {args.tokens:,} tokens, forward + backward, {args.device}; "
          f"[N, V] float32 = {plain['gradient'] / gib:.2f} GiB")
    print(f"    plain full-vocabulary: extra peak {plain['extra'] / gib:.2f} GiB")
    print(f"    chunked ({args.chunk} rows): extra peak {chunked['extra'] / gib:.2f} GiB")
    ratio = chunked["extra"] / plain["extra"]
    besides = (chunked["extra"] - chunked["gradient"]) / (plain["extra"] - plain["gradient"])
    print(f"    chunked / plain: {ratio:.3f} of all extra memory; {besides:.3f} besides the logits' gradient")
    print(f"    same value: plain {plain['loss']:.6f}, chunked {chunked['loss']:.6f}")
    return {"plain": plain, "chunked": chunked, "ratio": ratio, "ratio_besides_gradient": besides}


def _model(shape: dict, vocab: int, positions: int) -> dict:
    return {"model_type": "gpt2", "vocab_size": vocab, "n_positions": positions, "resid_pdrop": 0.0,
            "embd_pdrop": 0.0, "attn_pdrop": 0.0, "bos_token_id": 0, "eos_token_id": 0, **shape}


def _median(call, repeats: int = 15, warmup: int = 5) -> float:
    for _ in range(warmup):
        call()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return sorted(times)[len(times) // 2]


def forward_costs(config) -> dict:
    """Median seconds per batch of the teacher's forward, a student's forward and its whole training
    step (forward, loss, backward, optimizer), measured after a warm-up on one batch of the stream."""
    from kdtemp.engine.member import Member
    from kdtemp.engine.runtime import Runtime
    from kdtemp.tasks import get_task

    runtime = Runtime.create(config.device, config.precision)
    task = get_task(config.task)
    data = task.open(config, runtime)
    teacher = task.create_model(config.teacher, data, runtime, "teacher")
    teacher.module.eval()
    member = Member(config.members[0], "bench", task, data, runtime)
    batch = next(iter(data.stream.epoch(1)))

    def teacher_forward():
        with torch.no_grad(), runtime.autocast():
            return teacher(batch)

    def student_forward():
        with torch.no_grad(), runtime.autocast():
            return member.model(batch)

    logits = teacher_forward()
    member.begin_epoch(1)
    return {"teacher": _median(teacher_forward), "student": _median(student_forward),
            "step": _median(lambda: member.train_step(batch, logits, 1))}


def _setup(folder: Path, args, responses: str = "dataset") -> tuple[dict, list[dict], int]:
    """The shared settings and members of (b), (d) and (f) in ``folder``, and the vocabulary size."""
    from helpers.lm import train_tokenizer, write_instructions
    from transformers import AutoTokenizer

    preset = PRESETS[args.preset]
    data = write_instructions(folder / "data", train=args.records, validation=8, test=8)
    tokenizer = train_tokenizer(folder / "tokenizer")
    vocab = preset["vocab"] or len(AutoTokenizer.from_pretrained(str(tokenizer)))
    shared = {"task": "causal_lm", "device": args.device, "precision": "bf16" if args.device.startswith("cuda") else "fp32",
              "batch_size": args.batch_size,
              "data": {"dataset": "instructions", "root": str(data), "tokenizer": str(tokenizer),
                       "cache_dir": str(folder / "cache"), "max_prompt_length": 24, "max_length": 40,
                       "eval_samples": 8, "generation": {"max_new_tokens": 4}},
              "teacher": {"name": "teacher", "init": "random",
                          "config": _model(preset["teacher"], vocab, preset["positions"])}}
    objectives = [("kd", 1.0), ("kd", 2.0), ("reverse_kl", 1.0), ("reverse_kl", 2.0), ("skew_kl", 1.0),
                  ("kd", 4.0), ("jsd", 1.0), ("reverse_kl", 4.0)][: args.members]
    members = [{"model": {"name": "student", "init": "random",
                          "config": _model(preset["student"], vocab, preset["positions"])},
                "objective": name, "temperature": t, "epochs": args.epochs, "seed": index,
                "optimizer": {"name": "adamw", "lr": 1e-3},
                "responses": {"source": responses, **({"generation": {"protocol": "sample", "max_new_tokens": args.new_tokens,
                                                                     "batch_size": args.batch_size}}
                                                      if responses != "dataset" else {})}}
               for index, (name, t) in enumerate(objectives)]
    return shared, members, vocab


def cohort(args, responses: str = "dataset") -> dict:
    from kdtemp.config import from_dict
    from kdtemp.engine import CohortConfig, run_cohort

    preset = PRESETS[args.preset]
    with tempfile.TemporaryDirectory() as folder:
        shared, members, vocab = _setup(Path(folder), args, responses)
        run_cohort(from_dict(CohortConfig, {**shared, "members": members[:1]}), progress=False)  # warm-up and cache
        parts = forward_costs(from_dict(CohortConfig, {**shared, "members": members[:1]}))
        cohort_times, solo_times = [], []
        for _ in range(args.repeats):  # the arms alternate, so a slow moment of the machine hits both
            started = time.perf_counter()
            together = run_cohort(from_dict(CohortConfig, {**shared, "members": members}), progress=False)
            cohort_times.append(time.perf_counter() - started)
            started = time.perf_counter()
            alone = [run_cohort(from_dict(CohortConfig, {**shared, "members": [m]}), progress=False)[0] for m in members]
            solo_times.append(time.perf_counter() - started)
        cohort_seconds, solo_seconds = statistics.median(cohort_times), statistics.median(solo_times)
    same = all(a.curve == b.curve for a, b in zip(together, alone))
    ratio = cohort_seconds / solo_seconds
    print(f"    per batch: teacher forward {parts['teacher'] * 1e3:.1f} ms, student forward {parts['student'] * 1e3:.1f} ms "
          f"({parts['teacher'] / parts['student']:.1f}x), student training step {parts['step'] * 1e3:.1f} ms")
    label = {"dataset": "(b)", "teacher": "(d) SeqKD (teacher's responses)", "student": "(d) on-policy (own samples)"}
    print(f"{label[responses]} cohort of {len(members)} students vs {len(members)} solo runs ({args.preset}: teacher "
          f"{preset['teacher']}, student {preset['student']}, V = {vocab:,}, {args.epochs} epoch(s) of "
          f"{args.records // args.batch_size} batches of {args.batch_size}, {args.device})")
    print(f"    median of {args.repeats}: cohort {cohort_seconds:.1f} s, solo runs {solo_seconds:.1f} s: cohort / solo {ratio:.3f} "
          f"({1 / ratio:.2f}x); curves equal: {same}")
    return {"cohort_seconds": cohort_seconds, "solo_seconds": solo_seconds, "ratio": ratio, "equal": same, "parts": parts}


def cache_step(args) -> dict:
    """(f): the cohort of (b) trained from the teacher's cache (``data.teacher_cache``, k 32, written by a
    warm-up run) against the live teacher, alternating, the median of ``--repeats`` runs of each."""
    from kdtemp.config import from_dict
    from kdtemp.engine import CohortConfig, run_cohort

    with tempfile.TemporaryDirectory() as folder:
        shared, members, vocab = _setup(Path(folder), args)
        cached = {**shared, "data": {**shared["data"], "teacher_cache": {"k": 32}}}
        run_cohort(from_dict(CohortConfig, {**cached, "members": members[:1]}), progress=False)  # writes the cache
        live_times, cached_times = [], []
        for _ in range(args.repeats):
            for arm, times in ((shared, live_times), (cached, cached_times)):
                started = time.perf_counter()
                run_cohort(from_dict(CohortConfig, {**arm, "members": members}), progress=False)
                times.append(time.perf_counter() - started)
        per_batch = {arm: _teacher_per_batch(from_dict(CohortConfig, {**config, "members": members[:1]}))
                     for arm, config in (("live", shared), ("cached", cached))}
    live, cached_seconds = statistics.median(live_times), statistics.median(cached_times)
    print(f"(f) cohort of {len(members)} students from the teacher's cache (k 32) vs the live teacher ({args.preset}, "
          f"V = {vocab:,}, {args.epochs} epoch(s), {args.device})")
    print(f"    per batch: the teacher's forward {per_batch['live'] * 1e3:.1f} ms, the cache's rows "
          f"{per_batch['cached'] * 1e3:.2f} ms")
    print(f"    median of {args.repeats}: live {live:.1f} s, cached {cached_seconds:.1f} s: cached / live "
          f"{cached_seconds / live:.3f} ({live / cached_seconds:.2f}x; the live arm also evaluates its teacher each run)")
    return {"live_seconds": live, "cached_seconds": cached_seconds, "ratio": cached_seconds / live,
            "teacher_per_batch": per_batch}


def _teacher_per_batch(config) -> float:
    """Median seconds of one batch's teacher rows: the live teacher's forward pass, or the cache's gather."""
    from kdtemp.engine.runtime import Runtime
    from kdtemp.tasks import get_task

    runtime = Runtime.create(config.device, config.precision)
    task = get_task(config.task)
    data = task.open(config, runtime)
    teacher = task.create_model(config.teacher, data, runtime, "teacher")
    teacher.module.eval()
    batch = next(iter(data.stream.epoch(1)))

    def rows():
        with torch.no_grad(), runtime.autocast():
            return teacher(batch)

    return _median(rows)


def cache_dolly(args) -> dict:
    """(g): students on the Dolly replica (``dolly_tiny``'s data, GPT-2 tokenizer and evaluation; its prepared
    teacher, ``--dolly-teacher``) trained from the live teacher and from its cache at k = 128 and 32, the
    same seeds: forward KL at T = 1 and 2, one epoch on the first 1,000 records, evaluated greedily on 20
    prompts of Dolly and SelfInst (ROUGE-L) and on the validation split (perplexity)."""
    from kdtemp.config import from_dict
    from kdtemp.engine import CohortConfig, run_cohort
    import yaml

    if args.dolly_teacher is None or not Path(args.dolly_teacher).is_file():
        raise SystemExit("--dolly-teacher: give the teacher.pt that `kdtemp study run dolly_tiny` prepares "
                         "(<output>/prepared/<id>/teacher.pt)")
    example = yaml.safe_load((ROOT / "src" / "kdtemp" / "examples" / "dolly_tiny.yaml").read_text())
    data = dict(example["base"]["data"])
    text = args.text
    data.update(root=str(text / "minillm_dolly_processed_gpt2"), eval_root=str(text / "minillm_eval"),
                tokenizer=str(text / "gpt2_bpe"), cache_dir=str(args.work / "dolly-cache"))
    teacher = {"name": "tiny-gpt2-teacher", "init": "checkpoint", "weights": str(Path(args.dolly_teacher).resolve())}
    members = [{**{k: v for k, v in example["base"]["student"].items() if k not in ("dts", "responses")},
                "objective": "kd", "temperature": t} for t in (1.0, 2.0)]
    rows = {}
    for arm, cache_settings in (("live", None), ("cache k 128", {"k": 128}), ("cache k 32", {"k": 32})):
        shared = {"task": "causal_lm", "data": {**data, **({"teacher_cache": cache_settings} if cache_settings else {})},
                  "teacher": teacher, "batch_size": example["base"]["batch_size"], "device": args.device}
        started = time.perf_counter()
        results = run_cohort(from_dict(CohortConfig, {**shared, "members": members}), progress=False)
        seconds = time.perf_counter() - started
        for member, result in zip(members, results):
            final = result.final
            rows[f"{arm}, T {member['temperature']:g}"] = {
                "rouge_l": final.get("rouge_l"), "rouge_l_self-inst": final.get("rouge_l_self-inst"),
                "perplexity": final.get("perplexity"), "cohort_seconds": seconds}
            print(f"(g) Dolly replica, {arm}, forward KL T {member['temperature']:g}: ROUGE-L Dolly {final.get('rouge_l', 0):.2f}, "
                  f"SelfInst {final.get('rouge_l_self-inst', 0):.2f}, validation perplexity {final.get('perplexity', 0):.0f} "
                  f"(cohort {seconds / 60:.1f} min)", flush=True)
    return rows


def _dolly_responses(text: Path, split: str) -> list[list[int]]:
    """Each record's response ids (after MiniLLM's separator) of the Dolly ``split`` (``train`` or ``valid``)."""
    from kdtemp.tasks.lm.indexed import token_records

    return [list(map(int, r.response)) for r in token_records(text / "minillm_dolly_processed_gpt2" / f"{split}_0")
            if len(r.response) >= 8]


def _trained_gpt2(responses: list[list[int]], steps: int, path: Path, seed: int):
    """A 2-layer, 128-wide GPT-2 with the GPT-2 vocabulary trained ``steps`` steps (batch 8 x 128 tokens,
    AdamW 3e-3) on ``responses``; loaded from ``path`` when it is there."""
    from transformers import GPT2Config, GPT2LMHeadModel

    config = GPT2Config(**_model({"n_layer": 2, "n_embd": 128, "n_head": 4}, 50257, 128))
    torch.manual_seed(seed)
    model = GPT2LMHeadModel(config)
    if path.exists():
        model.load_state_dict(torch.load(path, weights_only=True))
        return model.eval()
    stream = torch.tensor([t for r in responses for t in r][: steps * 8 * 128 + 1])
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    started = time.perf_counter()
    for step in range(steps):
        window = stream[(step * 1024) % (len(stream) - 1025):][:1025]
        batch = window[:1024].view(8, 128)
        loss = model(input_ids=batch, labels=batch).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    print(f"    trained {steps} steps in {time.perf_counter() - started:.0f} s; last training loss {loss.item():.2f}")
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), path)
    return model.eval()


def _stories260k(path: Path):
    """karpathy/llama2.c's pretrained ``stories260K.bin`` (legacy format: 7 int32 header values, then float32
    weights in llama2.c's order) as a Hugging Face ``LlamaForCausalLM``. llama2.c rotates interleaved pairs,
    Hugging Face rotates halves: the query and key rows are permuted as Hugging Face's conversion does."""
    import numpy as np
    from transformers import LlamaConfig, LlamaForCausalLM

    raw = path.read_bytes()
    dim, hidden, layers, heads, kv_heads, vocab, positions = np.frombuffer(raw[:28], dtype=np.int32).tolist()
    weights = torch.from_numpy(np.frombuffer(raw[28:], dtype=np.float32).copy())
    head = dim // heads
    kv = kv_heads * head
    taken = 0

    def take(*shape):
        nonlocal taken
        count = int(np.prod(shape))
        out = weights[taken:taken + count].view(*shape)
        taken += count
        return out

    def permute(w, n):
        return w.view(n, w.shape[0] // n // 2, 2, w.shape[1]).transpose(1, 2).reshape(w.shape)

    config = LlamaConfig(vocab_size=abs(vocab), hidden_size=dim, intermediate_size=hidden, num_hidden_layers=layers,
                         num_attention_heads=heads, num_key_value_heads=kv_heads, max_position_embeddings=positions,
                         rms_norm_eps=1e-5, rope_theta=10000.0, tie_word_embeddings=vocab > 0, bos_token_id=1,
                         eos_token_id=2)
    model = LlamaForCausalLM(config)
    embed = take(abs(vocab), dim)
    attention_norm, wq, wk = take(layers, dim), take(layers, dim, dim), take(layers, kv, dim)
    wv, wo, ffn_norm = take(layers, kv, dim), take(layers, dim, dim), take(layers, dim)
    w1, w2, w3 = take(layers, hidden, dim), take(layers, dim, hidden), take(layers, hidden, dim)
    final_norm = take(dim)
    state = {"model.embed_tokens.weight": embed, "model.norm.weight": final_norm, "lm_head.weight": embed}
    for i in range(layers):
        prefix = f"model.layers.{i}."
        state.update({prefix + "input_layernorm.weight": attention_norm[i], prefix + "post_attention_layernorm.weight": ffn_norm[i],
                      prefix + "self_attn.q_proj.weight": permute(wq[i], heads), prefix + "self_attn.k_proj.weight": permute(wk[i], kv_heads),
                      prefix + "self_attn.v_proj.weight": wv[i], prefix + "self_attn.o_proj.weight": wo[i],
                      prefix + "mlp.gate_proj.weight": w1[i], prefix + "mlp.down_proj.weight": w2[i],
                      prefix + "mlp.up_proj.weight": w3[i]})
    model.load_state_dict(state, strict=False)
    return model.eval()


def _stories_logits(path: Path, tokens: int) -> tuple[Tensor, Tensor]:
    """The pretrained stories260K model's logits on text it samples itself from BOS (seed 0), and a student's:
    the same model with every weight perturbed by 3% Gaussian noise (a near, imperfect student)."""
    teacher = _stories260k(path)
    generator = torch.Generator().manual_seed(0)
    rows = max(1, tokens // 128)
    ids = torch.ones(rows, 1, dtype=torch.long)
    with torch.no_grad():
        for _ in range(127):
            logits = teacher(input_ids=ids).logits[:, -1]
            ids = torch.cat([ids, torch.multinomial(torch.softmax(logits, 1), 1, generator=generator)], 1)
        t_logits = teacher(input_ids=ids).logits.reshape(-1, teacher.config.vocab_size).float()
        student = _stories260k(path)
        for parameter in student.parameters():
            parameter.mul_(1 + 0.03 * torch.randn(parameter.shape, generator=generator))
        s_logits = student(input_ids=ids).logits.reshape(-1, teacher.config.vocab_size).float()
    return t_logits, s_logits


def cache(args) -> dict:
    """(e): the loss and gradient error of each cache design against the live teacher."""
    figures = {}
    print("(e) teacher-output cache against the live teacher, V = 50,257 (Dolly responses)")
    train, valid = _dolly_responses(args.text, "train"), _dolly_responses(args.text, "valid")
    teacher = _trained_gpt2(train, args.teacher_steps, args.work / f"cache-teacher-{args.teacher_steps}.pt", 0)
    student = _trained_gpt2(train, max(1, args.teacher_steps // 4), args.work / f"cache-student-{args.teacher_steps // 4}.pt", 1)
    ids = torch.tensor([t for r in valid for t in r][: args.cache_tokens]).view(-1, 128)
    with torch.no_grad():
        t_logits = teacher(input_ids=ids).logits.reshape(-1, 50257).float()
        s_logits = student(input_ids=ids).logits.reshape(-1, 50257).float()
    figures["gpt2_vocabulary"] = cache_errors(t_logits, s_logits, (8, 32, 128, 50257))
    stories = args.text / "llama2c_stories260K" / "stories260K.bin"
    if stories.is_file():
        print("(e) the same on a real pretrained model: llama2.c's stories260K (V = 512) on text it samples itself")
        t_logits, s_logits = _stories_logits(stories, args.cache_tokens)
        figures["stories260k"] = cache_errors(t_logits, s_logits, (8, 32, 128, 512))
    return figures


def cache_errors(t_logits: Tensor, s_logits: Tensor, ks: tuple[int, ...]) -> dict:
    """(e) on one pair of logits ``[N, V]``: every design, k, T and divergence."""
    from kdtemp.objectives.teacher_cache import cached_divergence, sampled, sampled_divergence, top_k_tail
    from kdtemp.objectives.token import token_divergence
    from kdtemp.tasks.lm import teacher_cache

    entropy = -(torch.log_softmax(t_logits, 1).exp() * torch.log_softmax(t_logits, 1)).sum(1).mean().item()
    print(f"    {t_logits.shape[0]} tokens; teacher entropy at T = 1: {entropy:.2f} nats")

    def loss_and_gradient(fn, T: float) -> tuple[float, Tensor]:
        s = s_logits.clone().requires_grad_(True)
        value = fn(s, T).mean() * T * T
        value.backward()
        return value.item(), s.grad

    rows, generator = [], torch.Generator().manual_seed(0)
    vocabulary, bins = t_logits.shape[1], 16
    designs = ([("top_k_tail", k) for k in ks] + [("top_k_tail_f16", k) for k in ks]
               + [("sampled", k) for k in ks[:-1]])
    encoded, stored = {}, {}
    for design, k in designs:
        if design == "sampled":
            encoded[design, k] = sampled(t_logits, k, generator=generator)
            stored[design, k] = encoded[design, k].bytes_per_token()
            continue
        dtype = "float16" if design.endswith("f16") else "float32"  # as the cache writes it, and read back
        written = teacher_cache.encode(top_k_tail(t_logits, k, bins), t_logits[:, 0], dtype)
        encoded[design, k] = teacher_cache.decode(written, slice(None), 1.0, vocabulary)[0]
        stored[design, k] = teacher_cache.stored_bytes(k, bins, vocabulary, dtype)
    for T in (1.0, 2.0, 4.0, 8.0):
        for divergence in ("forward_kl", "reverse_kl", "jsd"):
            live, live_grad = loss_and_gradient(lambda s, T: token_divergence(s, t_logits, T, divergence), T)
            for (design, k), cached in encoded.items():
                if design == "sampled" and divergence != "forward_kl":
                    continue
                if design.startswith("top_k_tail"):
                    value, grad = loss_and_gradient(lambda s, T: cached_divergence(s, cached, T, divergence), T)
                    estimate, low, high = cached.normaliser(T)
                    width = (high - low).max().item()
                    mass = (cached.logits / T - estimate.unsqueeze(1)).exp().sum(1).mean().item()
                else:  # KL(w || q) is no estimate of KL(p || q); its cross-entropy part is, unbiased at T = T0
                    value, grad = loss_and_gradient(lambda s, T: sampled_divergence(s, cached, T), T)
                    width, mass = None, None
                    log_q = torch.log_softmax(s_logits / T, 1)
                    estimate = -(cached.weights(T) * log_q.gather(1, cached.ids)).sum(1).mean().item()
                    exact = -(torch.softmax(t_logits / T, 1) * log_q).sum(1).mean().item()
                    cross_entropy_error = abs(estimate - exact) / exact
                row = {"T": T, "divergence": divergence, "design": design, "k": k,
                       "bytes": stored[design, k], "live": live, "cached": value,
                       "loss_error": abs(value - live) / live, "gradient_error": ((grad - live_grad).norm() / live_grad.norm()).item(),
                       "normaliser_interval": width, "top_k_mass": mass,
                       "cross_entropy_error": cross_entropy_error if design == "sampled" else None}
                rows.append(row)
                print(f"    T {T:g} {divergence:10s} {design:14s} k {k:>6} {row['bytes']:>7,} B/token: loss {live:.4f} -> "
                      f"{value:.4f} (error {row['loss_error']:.2e}), gradient error {row['gradient_error']:.2e}"
                      + (f", normaliser interval {width:.1e}, top-k mass {mass:.3f}" if width is not None else
                         f", cross-entropy error {row['cross_entropy_error']:.2e}"), flush=True)
    return {"entropy": entropy, "tokens": t_logits.shape[0], "rows": rows}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("memory", "cohort", "responses", "cache", "cache-step", "cache-dolly", "all"),
                        default="all")
    parser.add_argument("--dolly-teacher", help="(g): the teacher.pt `kdtemp study run dolly_tiny` prepares")
    parser.add_argument("--text", type=Path, default=ROOT.parent / "shared" / "data" / "text",
                        help="../shared/data/text (MiniLLM's Dolly as GPT-2 ids), for (e)")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "kdtemp-lm-bench",
                        help="where (e) keeps its trained models")
    parser.add_argument("--teacher-steps", type=int, default=300)
    parser.add_argument("--cache-tokens", type=int, default=1024, help="validation tokens (e) measures, a multiple of 128")
    parser.add_argument("--new-tokens", type=int, default=8, help="tokens each on-policy or teacher response samples")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--vocab", type=int, default=50257)
    parser.add_argument("--tokens", type=int, default=4096)
    parser.add_argument("--chunk", type=int, default=256)
    parser.add_argument("--preset", choices=sorted(PRESETS), default="tiny")
    parser.add_argument("--members", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--records", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3, help="runs of each arm of (b); the median is reported")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--json", default=None, help="also write the figures to this file")
    parser.add_argument("--memory-arm", choices=("plain", "chunked"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.memory_arm:
        print(json.dumps(memory_arm(args.memory_arm, args.vocab, args.tokens, args.chunk, args.device)))
        return {}
    print(f"machine: {torch.get_num_threads()} CPU threads, torch {torch.__version__}, device {args.device}")
    figures = {}
    if args.part in ("memory", "all"):
        figures["memory"] = memory(args)
    if args.part in ("cohort", "all"):
        figures["cohort"] = cohort(args)
    if args.part in ("responses", "all"):
        figures["seqkd"] = cohort(args, "teacher")
        figures["on_policy"] = cohort(args, "student")
    if args.part in ("cache", "all"):
        figures["cache"] = cache(args)
    if args.part in ("cache-step", "all"):
        figures["cache_step"] = cache_step(args)
    if args.part == "cache-dolly" or (args.part == "all" and args.dolly_teacher):
        figures["cache_dolly"] = cache_dolly(args)
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))
    return figures


if __name__ == "__main__":
    main()
