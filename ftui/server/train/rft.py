"""Reinforcement fine-tuning (OpenAI's ``method: reinforcement``) in ftui's own trainer: GRPO over LoRA.

Each step takes ``batch_size`` prompts of the training file, samples ``G`` answers to each with the model as it is
(``G`` = 4 × ``compute_multiplier``, at least 2), scores every answer with the job's grader (the engine of
``ftui/core/graders``: the same rewards as ``/graders/run`` and ``ftui eval --grader``), and moves the adapter towards
the answers that scored above their group's mean: the advantage of an answer is its reward minus the mean of its
prompt's samples, over their standard deviation (GRPO, TRL's ``scale_rewards="group"``); the loss is the advantage
times the answer's log-probability, averaged over every answer token of the step (DAPO's token-level mean, TRL's
default). One optimisation step per batch of samples, so no importance ratio or clipping is needed, and no reference
model (``beta`` 0, TRL's default). A group whose samples all scored the same teaches nothing: the share of such
groups is reported as ``frac_reward_zero_std``.

The ``G`` samples of one prompt share the prompt: its keys and values are computed once when sampling (the cache
repeated ``G`` times), and its positions once in the training pass (the packed shared prefix of
``BatchSteps._forward``). ``reasoning_effort`` is the answers' token budget (low 16, default 32,
medium 64, high 256). Before training, the starting model's samples on the first prompts are scored: when every one
scores the same the job fails saying so (nothing to learn; OpenAI's rule). Validation every ``eval_interval`` steps
on the validation file (``eval_samples`` answers per prompt; one answer is greedy), reported as OpenAI's RFT metrics
(``full_valid_mean_reward``…), with a checkpoint each time: the three best by validation reward are kept.
"""

from __future__ import annotations

import json
import logging
import math
import random
import statistics
import time

from ftui.core import graders
from ftui.core.graders import template
from ftui.server.store import Store, now
from ftui.server.train.trainer import JobTrainer, Stop, _bf16_wanted, _freeze_linears_bf16, _read_jsonl, job_files

log = logging.getLogger("ftui.runner")

RFT_BASE_LR = 1e-4  # × learning_rate_multiplier: LoRA GRPO runs at 1e-5 … 1e-4
BUDGETS = {"low": 16, "default": 32, "medium": 64, "high": 256}
PREFLIGHT_PROMPTS = 8
MAX_TRAIN, MAX_VALID = 50_000, 1_000  # OpenAI's limits
FULL_VALID_CAP = 200  # validation prompts scored at each evaluation
VALID_BATCH = 16  # validation prompts sampled at once


# -- data ----------------------------------------------------------------------------------------------------------
def item_of(row: dict) -> dict:
    """A data line's keys for the grader's ``{{ item.* }}``: all but the reserved messages and tools."""
    return {k: v for k, v in row.items() if k not in ("messages", "tools")}


def needed_item_paths(grader: dict) -> list[list[str | int]]:
    """The ``item.…`` variables the grader's templates read (a python grader's reads cannot be known)."""
    paths: list[list[str | int]] = []
    for _, g in graders.walk(grader):
        texts = [g.get("input"), g.get("reference")] if g["type"] in ("string_check", "text_similarity") else []
        if g["type"] in ("score_model", "label_model"):
            texts = [graders.content_text(m.get("content")) for m in g["input"]]
        for text in texts:
            if isinstance(text, str):
                paths += [p for p in template.variables(text) if p[0] == "item" and p not in paths]
    return paths


def validate(store: Store, job: dict) -> dict | None:
    """A reinforcement job's files: prompts (messages with no final answer) and the keys its grader reads, named by
    line; OpenAI's error object, or None."""
    grader = job["method"]["reinforcement"]["grader"]
    paths = needed_item_paths(grader)
    for param, fid, label in job_files(job):
        try:
            rows = _read_jsonl(store.file_path(fid))
        except (OSError, ValueError) as exc:
            return {"code": "invalid_file", "param": param, "message": f"The {label} file could not be read: {exc}"}
        limit = MAX_TRAIN if param == "training_file" else MAX_VALID
        if param == "training_file" and len(rows) < 10:
            return {"code": "invalid_n_examples", "param": param,
                    "message": f"Training file has {len(rows)} example(s), but must have at least 10 examples"}
        if len(rows) > limit:
            return {"code": "invalid_n_examples", "param": param,
                    "message": f"The {label} file has {len(rows):,} examples; reinforcement fine-tuning takes at "
                    f"most {limit:,}"}
        for n, row in enumerate(rows, 1):
            why = _prompt_problem(row)
            if why is None:
                for path in paths:
                    try:
                        template.lookup(path, {}, item_of(row))
                    except template.InvalidVariable:
                        why = (f"the grader reads {{{{ {'.'.join(map(str, path))} }}}}, which this line does not "
                               "have")
                        break
            if why is not None:
                return {"code": "invalid_file_format", "param": param,
                        "message": f"The {label} file is not reinforcement data: line {n}: {why}"}
    return None


def _prompt_problem(row: object) -> str | None:
    if not isinstance(row, dict):
        return "not a JSON object"
    msgs = row.get("messages")
    if not isinstance(msgs, list) or not msgs or not all(isinstance(m, dict) and "role" in m for m in msgs):
        return "messages must be a list of messages with roles"
    if msgs[-1].get("role") == "assistant":
        return "ends with an assistant message: reinforcement data is the prompt alone (the model writes the answer)"
    return None


# -- the trainer -----------------------------------------------------------------------------------------------------
class ReinforcementTrainer(JobTrainer):
    best_by = "full_valid_mean_reward"

    def run(self) -> None:
        import torch
        from peft import LoraConfig, PeftModel, get_peft_model

        from ftui.server.models import basemodels

        job = self.job
        spec = job["method"]["reinforcement"]
        hp = dict(spec.get("hyperparameters") or {})
        grader = spec["grader"]
        train_rows = _read_jsonl(self.store.file_path(job["training_file"]))
        valid_rows = _read_jsonl(self.store.file_path(job["validation_file"])) if job["validation_file"] else []
        auto = lambda key, default: default if hp.get(key, "auto") == "auto" else hp[key]  # noqa: E731
        n_epochs = int(auto("n_epochs", 1))
        bs = max(1, min(int(auto("batch_size", 4)), len(train_rows)))
        lrm = float(auto("learning_rate_multiplier", 1.0))
        cm = float(auto("compute_multiplier", 1.0))
        groups = max(2, round(4 * cm))
        steps_per_epoch = math.ceil(len(train_rows) / bs)
        total = n_epochs * steps_per_epoch
        eval_interval = int(auto("eval_interval", max(1, total // 4)))
        eval_samples = int(auto("eval_samples", 1))
        effort = hp.get("reasoning_effort", "default")
        self.budget = BUDGETS.get(effort, BUDGETS["default"])
        resolved = {"n_epochs": n_epochs, "batch_size": bs, "learning_rate_multiplier": lrm,
                    "compute_multiplier": cm, "eval_interval": eval_interval, "eval_samples": eval_samples,
                    "reasoning_effort": effort}
        self.store.update_job(job["id"], method={"type": "reinforcement", "reinforcement": {
            **spec, "hyperparameters": resolved}})

        torch.manual_seed(job["seed"])
        parent = self.parent_adapter()
        model, tok = basemodels.load(self.base, self.store.dir)
        dev = basemodels.device()
        # bf16 where the hardware has it, for sampling and training alike (one update per batch of samples: no
        # importance ratio for a precision mismatch to skew)
        self.bf16 = _bf16_wanted(dev)
        resume = self._load_state()
        if resume is not None:
            model = PeftModel.from_pretrained(model, str(self.state_dir / "adapter"), is_trainable=True)
        elif parent is not None:
            model = PeftModel.from_pretrained(model, str(parent), is_trainable=True)
        else:
            model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0,
                                                     target_modules="all-linear", task_type="CAUSAL_LM"))
        if self.bf16:  # the frozen base weights in bf16 once, as the SFT trainer does (not re-cast every forward)
            _freeze_linears_bf16(model)
        params = self.params = [p for p in model.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=RFT_BASE_LR * lrm, weight_decay=0.0)
        if resume is not None and (self.state_dir / "optimizer.pt").exists():
            opt.load_state_dict(torch.load(self.state_dir / "optimizer.pt", map_location=dev))
        start_step = resume["step"] if resume else 0
        history: list[dict] = resume["history"] if resume else []
        self.store.update_job(job["id"], total_steps=total)

        self.tok, self.dev, self.model = tok, dev, model
        self.prompts = [self._encode(r) for r in train_rows]
        self.items = [item_of(r) for r in train_rows]
        valid = valid_rows[:FULL_VALID_CAP]
        self.valid_prompts = [self._encode(r) for r in valid]
        self.valid_items = [item_of(r) for r in valid]
        self.valid_texts = [_prompt_text(r) for r in valid]
        with graders.Engine(grader, judge=self._judge()) as engine:
            self.engine = engine
            if resume is None:
                self._preflight(train_rows, groups)
                self.event("Fine-tuning job started" + (f", continuing {job['model']}" if parent else ""))
            else:
                forgotten = self.store.forget_steps_after(job["id"], start_step)
                self.event(f"Resuming fine-tuning from step {start_step}/{total}" + (
                    f"; {forgotten} report(s) of later steps are replaced as they are trained again"
                    if forgotten else ""))
            trained = self._loop_rft(opt, n_epochs, bs, groups, eval_interval, eval_samples, start_step, total,
                                     history)
        self._finish(model, history, trained)

    # -- sampling and grading --------------------------------------------------------------------------------------
    def _encode(self, row: dict) -> list[int]:
        from ftui.server.train.trainer import _normalize, _render

        return _render(self.tok, _normalize(row["messages"]), generation_prompt=True)

    def _sample(self, prompts: list[list[int]], n: int, greedy: bool = False) -> list[list[list[int]]]:
        """``n`` answers to each prompt, all in one batch (prompts left-padded): token ids, the end of turn
        included when it was reached."""
        import torch

        model = self.model
        ends = {self.tok.eos_token_id}
        if "<|im_end|>" in self.tok.get_vocab():
            ends.add(self.tok.convert_tokens_to_ids("<|im_end|>"))
        width = max(len(p) for p in prompts)
        pad = self.tok.pad_token_id
        ids = torch.tensor([[pad] * (width - len(p)) + p for p in prompts], dtype=torch.long, device=self.dev)
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], dtype=torch.long,
                            device=self.dev)
        sampling = {"do_sample": False} if greedy else {"do_sample": True, "temperature": 1.0, "top_p": 1.0,
                                                         "top_k": 0}
        model.eval()
        try:
            with torch.no_grad(), self._autocast(self.dev):
                if n == 1 or width < 2:
                    out = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=self.budget,
                                         num_return_sequences=n, pad_token_id=pad, eos_token_id=list(ends),
                                         use_cache=True, **sampling)
                else:
                    # the n samples of a prompt share it: its keys and values are computed once (all but its last
                    # token, which generate feeds itself) and repeated n times, instead of n prefills of the same
                    # prompt (generate's num_return_sequences); 30 % less sampling time at 8 × 4 review prompts
                    positions = (mask.cumsum(-1) - 1).clamp(min=0)
                    cache = model(input_ids=ids[:, :-1], attention_mask=mask[:, :-1],
                                  position_ids=positions[:, :-1], use_cache=True).past_key_values
                    cache.batch_repeat_interleave(n)
                    out = model.generate(input_ids=ids.repeat_interleave(n, 0),
                                         attention_mask=mask.repeat_interleave(n, 0), cache=cache,
                                         max_new_tokens=self.budget, pad_token_id=pad, eos_token_id=list(ends),
                                         use_cache=True, **sampling)
        finally:
            model.train()
        rows = out[:, width:].tolist()
        answers = []
        for row in rows:
            cut = next((i + 1 for i, t in enumerate(row) if t in ends), len(row))
            answers.append(row[:cut])
        return [answers[i * n:(i + 1) * n] for i in range(len(prompts))]

    def _text(self, answer: list[int]) -> str:
        return self.tok.decode(answer, skip_special_tokens=True)

    def _grade(self, answers: list[list[int]], item: dict) -> list[graders.Graded]:
        return [self.engine.grade(template.make_sample(self._text(a)), item) for a in answers]

    def _judge(self) -> graders.Judge:
        """Model graders are answered by a model this backend serves, loaded in this process."""
        cache: dict = {}

        def judge(model_id: str, messages: list[dict], params: dict) -> tuple[str, int]:
            from ftui.server.models import basemodels
            from ftui.server.models.inference import ModelCache, judge_answer

            tuned = self.store.tuned(model_id)
            base = tuned["base"] if tuned else model_id
            if tuned is None and model_id not in basemodels.names(self.store.dir):
                raise graders.JudgeError(f"{model_id}: no such model on this backend")
            if "models" not in cache:
                cache["models"] = ModelCache(self.store.dir)
            entry = cache["models"].get(model_id, base, tuned["path"] if tuned else None)
            return judge_answer(entry, messages, params)

        return judge

    def _preflight(self, rows: list[dict], groups: int) -> None:
        """The starting model's rewards on the first prompts: fail when they are all the same (nothing to learn)."""
        n = min(PREFLIGHT_PROMPTS, len(self.prompts))
        rewards: list[float] = []
        for i, answers in enumerate(self._sample(self.prompts[:n], groups)):
            rewards += [g.reward for g in self._grade(answers, self.items[i])]
        mean = statistics.fmean(rewards)
        self.event(f"The starting model's reward on {n} prompts × {groups} samples: mean {mean:.2f} "
                   f"(from {min(rewards):.2f} to {max(rewards):.2f})",
                   data={"preflight_mean_reward": round(mean, 5), "preflight_samples": len(rewards)})
        if max(rewards) == min(rewards):
            raise NothingToLearn(
                f"Every one of the starting model's {len(rewards)} samples on {n} training prompts scored "
                f"{rewards[0]:g}: the grader gives nothing to learn from (reinforcement needs some answers to score "
                "better than others). Check the grader on a few answers (ftui grade), warm-start from a model "
                "fine-tuned on examples, or make the task easier.")

    # -- the loop --------------------------------------------------------------------------------------------------
    def _loop_rft(self, opt, n_epochs, bs, groups, eval_interval, eval_samples, start_step, total, history) -> int:
        import torch

        job = self.job
        step = 0
        trained_tokens = 0
        steps_per_epoch = math.ceil(len(self.prompts) / bs)
        t_start = time.time()
        for epoch in range(n_epochs):
            order = list(range(len(self.prompts)))
            random.Random(job["seed"] * 1000 + epoch).shuffle(order)
            for b in range(steps_per_epoch):
                step += 1
                batch = order[b * bs:(b + 1) * bs]
                if step <= start_step:
                    continue
                try:
                    self.control()
                except Stop as stop:
                    if stop.why == "paused":
                        self._save_state(self.model, opt, step - 1, history)
                    raise
                torch.manual_seed(job["seed"] * 100_003 + step)  # the same samples after a resume
                t0 = time.perf_counter()
                sampled = list(zip(batch, self._sample([self.prompts[i] for i in batch], groups)))
                t1 = time.perf_counter()
                graded = [self._grade(answers, self.items[i]) for i, answers in sampled]
                t2 = time.perf_counter()
                loss_sum, n_tokens, zero_std = 0.0, sum(len(a) for _, answers in sampled for a in answers), 0
                for (i, answers), marks in zip(sampled, graded):
                    rewards = [g.reward for g in marks]
                    mean, std = statistics.fmean(rewards), statistics.pstdev(rewards)
                    if std == 0:
                        zero_std += 1
                        continue  # every advantage is 0: nothing to compute
                    adv = [(r - mean) / (std + 1e-4) for r in rewards]
                    loss_sum += self._policy_backward(self.prompts[i], answers, adv, max(1, n_tokens))
                opt.step()
                opt.zero_grad(set_to_none=True)
                t3 = time.perf_counter()
                trained_tokens += sum(len(self.prompts[i]) * groups for i in batch) + n_tokens
                data = self._metrics(step, total, graded, sampled, zero_std, loss_sum,
                                     {"sampling": t1 - t0, "grading": t2 - t1, "training": t3 - t2})
                at_eval = step % eval_interval == 0 or step == total
                if at_eval and self.valid_prompts:
                    te = time.perf_counter()
                    data.update(self._validate(eval_samples, step))
                    data["timing"]["step"]["eval"] = round(time.perf_counter() - te, 3)
                data["timing"]["step"]["full_iteration"] = round(time.perf_counter() - t0, 3)
                history.append(data)
                self.event(_message(data), type="metrics", data=data)
                if at_eval and self.valid_prompts and step < total:
                    saved = self._checkpoint(self.model, step, data)
                    self._save_state(self.model, opt, step, history, adapter=saved)
                elapsed = time.time() - t_start
                done = step - start_step
                self.store.update_job(job["id"], step=step,
                                      estimated_finish=int(now() + elapsed / done * (total - step)) if done else None)
                try:
                    self.control()
                except Stop as stop:
                    if stop.why != "paused":
                        raise
                    self._save_state(self.model, opt, step, history)
                    raise
        if self.valid_prompts:
            self._checkpoint(self.model, step, history[-1] if history else {})
        return trained_tokens

    def _policy_backward(self, prompt: list[int], answers: list[list[int]], adv: list[float], n_tokens: int) -> float:
        """One prompt's share of the step's loss, backward: −Σ advantage × log p(answer token) / step's tokens.
        The group's samples share the prompt, so ``_forward`` computes its positions once."""
        import torch

        keep = [(a, w) for a, w in zip(answers, adv) if a and w != 0]
        if not keep:
            return 0.0
        pairs = [(prompt + a, [-100] * len(prompt) + a) for a, _ in keep]
        logits, tgt, rows = self._forward(self.model, pairs, self.tok.pad_token_id, self.dev)
        lp = torch.gather(logits.log_softmax(-1), 1, tgt.unsqueeze(-1)).squeeze(-1)
        weights = torch.tensor([w for _, w in keep], dtype=lp.dtype, device=lp.device)[rows]
        loss = -(weights * lp).sum() / n_tokens
        loss.backward()
        return float(loss.item())

    def _validate(self, eval_samples: int, step: int) -> dict:
        """The validation prompts' samples graded: OpenAI's validation metrics, and the rollouts (each prompt with
        its samples and their rewards) kept for this step (``GET /v1/ftui/fine_tuning/jobs/{id}/rollouts``)."""
        rewards: list[float] = []
        parse_errors = 0
        rollouts: list[dict] = []
        for at in range(0, len(self.valid_prompts), VALID_BATCH):
            chunk = self.valid_prompts[at:at + VALID_BATCH]
            for k, answers in enumerate(self._sample(chunk, eval_samples, greedy=eval_samples == 1)):
                marks = self._grade(answers, self.valid_items[at + k])
                rewards += [g.reward for g in marks]
                parse_errors += sum(1 for g in marks if g.errors["sample_parse_error"])
                rollouts.append(_rollout(at + k, self.valid_texts[at + k], self.valid_items[at + k],
                                         [self._text(a) for a in answers], marks))
        mean = round(statistics.fmean(rewards), 5)
        self.store.add_rollouts(self.job["id"], step, {"mean_reward": mean}, rollouts)
        return {"full_valid_mean_reward": mean, "valid_reward_mean": mean,
                "full_valid_mean_parse_error": round(parse_errors / len(rewards), 5)}

    def _metrics(self, step, total, graded, sampled, zero_std, loss, timing) -> dict:
        flat = [g for marks in graded for g in marks]
        n = len(flat)
        grader = self.engine.grader
        subs = list(graders.sub_graders(grader)) if grader["type"] == "multi" else []
        scores = [{"name": grader["name"], "type": grader["type"],
                   "train_reward_mean": round(statistics.fmean(g.reward for g in flat), 5)}]
        scores += [{"name": k, "type": graders.sub_graders(grader)[k]["type"],
                    "train_reward_mean": round(statistics.fmean(g.sub_rewards.get(k, 0.0) for g in flat), 5)}
                   for k in subs]
        errors = {f"train_{flag}_count": sum(1 for g in flat if g.errors[flag])
                  for flag in ("sample_parse_error", "invalid_variable_error", "other_error",
                               "python_grader_runtime_error", "model_grader_parse_error")}
        lengths = [len(a) for _, answers in sampled for a in answers]
        mean = round(statistics.fmean(g.reward for g in flat), 5)
        return {"step": step, "total_steps": total, "train_mean_reward": mean, "train_reward_mean": mean,
                "train_reward_std": round(statistics.pstdev(g.reward for g in flat), 5),
                "frac_reward_zero_std": round(zero_std / len(graded), 5), "train_loss": round(loss, 6),
                "completion_tokens_mean": round(statistics.fmean(lengths), 3), "samples": n,
                "scores": {"graders": scores}, "errors": {"graders": [{"name": grader["name"], **errors}]},
                "timing": {"step": {k: round(v, 3) for k, v in timing.items()}}}


ROLLOUT_TEXT = 4000  # characters of a prompt or item value kept in a rollout


def _prompt_text(row: dict) -> str:
    """The prompt as a person reads it in the rollout view: its last user message (text parts joined)."""
    for m in reversed(row.get("messages") or []):
        if isinstance(m, dict) and m.get("role") == "user":
            return graders.content_text(m.get("content"))[:ROLLOUT_TEXT]
    return ""


def _rollout(index: int, prompt: str, item: dict, texts: list[str], marks: list[graders.Graded]) -> dict:
    small = {k: (v[:ROLLOUT_TEXT] if isinstance(v, str) else v) for k, v in item.items() if k != "messages"}
    if len(json.dumps(small, default=str)) > 4 * ROLLOUT_TEXT:
        small = {"...": "the item is too large to keep with the rollout"}
    return {"index": index, "prompt": prompt, "item": small,
            "mean_reward": round(statistics.fmean(g.reward for g in marks), 5),
            "samples": [{"text": t, "reward": round(g.reward, 5), "sub_rewards": dict(g.sub_rewards),
                         "errors": sorted(k for k, v in g.errors.items() if v)} for t, g in zip(texts, marks)]}


class NothingToLearn(RuntimeError):
    """Every sample of the starting model scores the same."""


def _message(d: dict) -> str:
    text = f"Step {d['step']}/{d['total_steps']} , train mean reward={d['train_mean_reward']:.2f}"
    if "full_valid_mean_reward" in d:
        text += (f", full validation mean reward={d['full_valid_mean_reward']:.2f}, full validation mean parse "
                 f"error={d['full_valid_mean_parse_error']:.2f}")
    return text
