"""Causal-LM fine-tuning on instruction/response pairs: the loss counts only the response tokens; evaluation
reports per-token loss and perplexity and, from the text the model generates (greedy) for the first
`generation.eval_samples` eval rows, BLEU and ROUGE-L against the reference responses (sacrebleu, rouge-score)
and, when the data has a final answer, the exact match of the generated answer."""

from __future__ import annotations

import math
import re
import string
from typing import TYPE_CHECKING, Any

from raytune_llm.core.errors import Problem, UserError
from raytune_llm.tasks.base import INDEX, EvalBatch, Task, model_inputs, no_grad, tasks

if TYPE_CHECKING:
    import datasets
    import torch

    from raytune_llm.schema import DataConfig, ExperimentConfig, GenerationConfig

IGNORE = -100


def prompt_text(row: dict[str, Any], cfg: DataConfig, tokenizer: Any) -> str:
    text = cfg.prompt_template.format(**row) if cfg.prompt_template else str(row[cfg.text_column])
    if cfg.chat_template:
        return tokenizer.apply_chat_template([{"role": "user", "content": text}], tokenize=False,
                                             add_generation_prompt=True)
    return text


def template_columns(template: str | None) -> list[str]:
    return [name for _, name, _, _ in string.Formatter().parse(template or "") if name]


def extract_answer(text: str, pattern: str | None) -> str | None:
    if pattern is None:
        return normalise(text)
    found = re.search(pattern, text)
    return normalise(found.group(1)) if found else None


def normalise(answer: str) -> str:
    return answer.strip().replace(",", "").rstrip(".").strip().lower()


def text_overlap(texts: list[str], references: list[str]) -> dict[str, float]:
    """Corpus BLEU (sacrebleu's defaults, 0-100 scaled to 0-1) and mean ROUGE-L F1 of generated texts."""
    import sacrebleu
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"])
    rouge = [scorer.score(ref, text)["rougeL"].fmeasure for text, ref in zip(texts, references)]
    return {"bleu": sacrebleu.corpus_bleu(texts, [references]).score / 100, "rouge_l": sum(rouge) / len(rouge)}


def shifted(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Next-token logits and targets. Prompt tuning prepends virtual tokens to the logits: only the last
    len(labels) positions belong to the real tokens."""
    logits = logits[:, -labels.shape[1]:]
    return logits[:, :-1].float().flatten(0, 1), labels[:, 1:].flatten()


def response_loss(model: Any, batch: dict[str, torch.Tensor], autocast: dict) -> tuple[torch.Tensor, float, int]:
    """The batch's logits, and the summed loss over its response tokens and their count."""
    import torch
    import torch.nn.functional as F

    with torch.autocast(**autocast):
        logits = model(**model_inputs(batch)).logits
    flat_logits, targets = shifted(logits, batch["labels"])
    loss = float(F.cross_entropy(flat_logits, targets, ignore_index=IGNORE, reduction="sum"))
    return logits, loss, int((targets != IGNORE).sum())


@tasks.register("causal_lm")
class CausalLM(Task):
    name = "causal_lm"
    peft_task_type = "CAUSAL_LM"
    extra_columns = ("prompt_length", "answer", "reference")
    token_level = True
    augment_methods = ()
    augment_refusal = "a causal LM's targets are its own tokens: an edited row changes what it is taught to write"
    consistency_refusal = ("train.consistency: R-Drop is built for classification, regression and token "
                           "classification heads (a KL over the whole vocabulary at every position is not)")

    def problems(self, cfg: ExperimentConfig) -> list[Problem]:
        """The metrics of generated answers need something to compare with, and rows to generate for."""
        problems, metric = [], cfg.search.metric
        if metric == "eval_exact_match" and not cfg.data.answer_column:
            problems.append(Problem("search.metric", "eval_exact_match compares generated answers with "
                                    "data.answer_column; set data.answer_column"))
        if metric in ("eval_exact_match", "eval_bleu", "eval_rouge_l") and cfg.generation.eval_samples == 0:
            problems.append(Problem("generation.eval_samples", f"is 0, so {metric} is never measured; set it to the "
                                    "number of eval rows to answer (e.g. 32)"))
        return problems + self.lever_problems(cfg)

    def loss_terms(self, labels: torch.Tensor) -> int:
        return int((labels[:, 1:] != IGNORE).sum())  # the shifted targets the loss counts

    def required_columns(self, cfg: DataConfig) -> list[str]:
        prompt = template_columns(cfg.prompt_template) or [cfg.text_column]
        return [*prompt, cfg.label_column, *([cfg.answer_column] if cfg.answer_column else [])]

    def text_columns(self, cfg: DataConfig) -> list[str]:
        # A template's fields may be empty by design (an instruction dataset's optional `input`); the response not.
        return [*([] if cfg.prompt_template else [cfg.text_column]), cfg.label_column]

    def encode(self, ds: datasets.Dataset, cfg: DataConfig, tokenizer: Any, max_length: int, label_names: list[str],
               split: str) -> datasets.Dataset:
        eos = tokenizer.eos_token or ""

        def encode(row: dict[str, Any]) -> dict[str, Any]:
            prompt_ids = tokenizer(prompt_text(row, cfg, tokenizer), add_special_tokens=not cfg.chat_template)
            response = str(row[cfg.label_column])
            response_ids = tokenizer(response + eos, add_special_tokens=False)["input_ids"]
            ids = (prompt_ids["input_ids"] + response_ids)[:max_length]
            n_prompt = len(prompt_ids["input_ids"])
            answer = normalise(str(row[cfg.answer_column])) if cfg.answer_column else ""
            return {"input_ids": ids, "attention_mask": [1] * len(ids),
                    "labels": ([IGNORE] * n_prompt + response_ids)[:max_length], "prompt_length": n_prompt,
                    "answer": answer, "reference": response}

        ds = ds.map(encode, desc=f"tokenising {split}")
        fits = ds.filter(lambda row: row["prompt_length"] < len(row["input_ids"]), desc=f"checking {split}")
        if len(fits) == 0:
            raise UserError(f"model.max_length: no row of split {split!r} has room for its response after the "
                            "prompt; raise model.max_length")
        if len(fits) < len(ds):
            print(f"note: {len(ds) - len(fits)} of {len(ds)} rows of {split!r} dropped: the prompt alone fills "
                  "model.max_length")
        return fits

    def auto_class(self) -> Any:
        from transformers import AutoModelForCausalLM

        return AutoModelForCausalLM

    def collator(self, tokenizer: Any) -> Any:
        from transformers import DataCollatorForSeq2Seq

        return DataCollatorForSeq2Seq(tokenizer, label_pad_token_id=IGNORE, return_tensors="pt")

    def loss(self, logits: torch.Tensor, labels: torch.Tensor, label_smoothing: float) -> torch.Tensor:
        import torch.nn.functional as F

        return F.cross_entropy(*shifted(logits, labels), ignore_index=IGNORE, label_smoothing=label_smoothing)

    def eval_batch(self, model: Any, batch: dict[str, torch.Tensor], rows: list[dict[str, Any]], autocast: dict,
                   tokenizer: Any, generation: GenerationConfig) -> EvalBatch:
        logits, loss, count = response_loss(model, batch, autocast)
        wanted = [r for r in rows if r[INDEX] < generation.eval_samples]
        texts = dict(zip((r[INDEX] for r in wanted), self.generate(model, wanted, tokenizer, autocast, generation)))
        # A row's prediction: its generated text and the answer found in it; for rows not generated, the model's
        # next-token choices on the response (teacher-forced). Either is what an exported model is checked against.
        labels = batch["labels"]
        choices = logits[:, -labels.shape[1]:].argmax(-1)[:, :-1]
        forced = [row[mask].tolist() for row, mask in zip(choices, labels[:, 1:] != IGNORE)]
        preds: list[Any] = []
        refs: list[Any] = []
        for r, f in zip(rows, forced):
            if r[INDEX] in texts:
                text = texts[r[INDEX]]
                preds.append({"text": text, "answer": extract_answer(text, generation.answer_pattern)})
                refs.append({"reference": r["reference"], "answer": r["answer"] or None})
            else:
                preds.append(f)
                refs.append(None)
        return EvalBatch(loss, count, preds, refs)

    @no_grad
    def generate(self, model: Any, rows: list[dict[str, Any]], tokenizer: Any, autocast: dict,
                 generation: GenerationConfig) -> list[str]:
        """Greedy responses to the rows' prompts, left-padded into one batch."""
        import torch

        if not rows:
            return []
        device = next(p for p in model.parameters()).device
        prompts = [r["input_ids"][: r["prompt_length"]] for r in rows]
        width = max(map(len, prompts))
        pad = tokenizer.pad_token_id
        ids = torch.tensor([[pad] * (width - len(p)) + p for p in prompts], device=device)
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], device=device)
        with torch.autocast(**autocast):
            out = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=generation.max_new_tokens,
                                 do_sample=False, pad_token_id=pad, eos_token_id=tokenizer.eos_token_id)
        return tokenizer.batch_decode(out[:, width:], skip_special_tokens=True)

    def metrics(self, preds: list[Any], refs: list[Any], label_names: list[str], loss: float) -> dict[str, float]:
        out = {"loss": loss, "perplexity": math.exp(min(loss, 50.0))}
        generated = [(p, r) for p, r in zip(preds, refs) if r is not None]
        if generated:
            out.update(text_overlap([p["text"] for p, _ in generated], [r["reference"] for _, r in generated]))
        answered = [(p["answer"], r["answer"]) for p, r in generated if r["answer"]]
        if answered:
            out["exact_match"] = sum(p == r for p, r in answered) / len(answered)
        return out
