"""Classification as generation, for decoder models: the prompt (a template filled from the row) is followed by
the label's verbaliser word, and the model learns to generate it (loss on those tokens only). A row is
classified by scoring every label's verbaliser after the prompt and taking the likeliest, so the prediction is
always a valid label and accuracy / macro-F1 compare with sequence classification directly."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from raytune_llm.tasks.base import ChanceLevel, EvalBatch, no_grad, tasks
from raytune_llm.tasks.causal_lm import IGNORE, CausalLM, prompt_text, response_loss, template_columns
from raytune_llm.tasks.metrics import classification_metrics
from raytune_llm.tasks.sequence_classification import SequenceClassification, label_ids

if TYPE_CHECKING:
    import datasets
    import torch

    from raytune_llm.schema import DataConfig, GenerationConfig


def verbalisers(cfg: DataConfig, label_names: list[str]) -> list[str]:
    return list(cfg.verbalizer) if cfg.verbalizer else list(label_names)


@tasks.register("generative_classification")
class GenerativeClassification(CausalLM):
    """A causal LM task (model class, collation and loss are CausalLM's) with classification's labels and metrics."""

    name = "generative_classification"
    extra_columns = ("prompt_length", "class_id", "choices")
    placeholder_label = 0

    def render_prediction(self, pred: Any, label_names: list[str]) -> Any:
        return label_names[pred]

    def required_columns(self, cfg: DataConfig) -> list[str]:
        return [*(template_columns(cfg.prompt_template) or [cfg.text_column]), cfg.label_column]

    def label_names(self, cfg: DataConfig, train: datasets.Dataset) -> list[str]:
        return SequenceClassification().label_names(cfg, train)

    def encode(self, ds: datasets.Dataset, cfg: DataConfig, tokenizer: Any, max_length: int, label_names: list[str],
               split: str) -> datasets.Dataset:
        classes = label_ids(ds[cfg.label_column], label_names, split, cfg.label_column)
        eos = tokenizer.eos_token or ""
        # Every label's verbaliser tokens, stored per row so evaluation needs nothing but the row.
        choices = [tokenizer(word + eos, add_special_tokens=False)["input_ids"]
                   for word in verbalisers(cfg, label_names)]
        longest = max(map(len, choices))

        def encode(row: dict[str, Any], i: int) -> dict[str, Any]:
            prompt = tokenizer(prompt_text(row, cfg, tokenizer), add_special_tokens=not cfg.chat_template)
            prompt_ids = prompt["input_ids"][-(max_length - longest):]  # keep the end: the template's question
            answer = choices[classes[i]]
            ids = prompt_ids + answer
            return {"input_ids": ids, "attention_mask": [1] * len(ids),
                    "labels": [IGNORE] * len(prompt_ids) + answer, "prompt_length": len(prompt_ids),
                    "class_id": classes[i], "choices": choices}

        return ds.map(encode, with_indices=True, desc=f"tokenising {split}")

    def chance_level(self, eval_ds: datasets.Dataset, label_names: list[str]) -> ChanceLevel:
        # The loss here is over verbaliser tokens, not a distribution over labels: no constant-prediction loss.
        return ChanceLevel("eval_mcc", 0.0)

    def eval_batch(self, model: Any, batch: dict[str, torch.Tensor], rows: list[dict[str, Any]], autocast: dict,
                   tokenizer: Any, generation: GenerationConfig) -> EvalBatch:
        _, loss, count = response_loss(model, batch, autocast)
        preds = self.classify(model, rows, tokenizer.pad_token_id, autocast, batch["input_ids"].device)
        return EvalBatch(loss, count, preds, [r["class_id"] for r in rows])

    @no_grad
    def classify(self, model: Any, rows: list[dict[str, Any]], pad: int, autocast: dict,
                 device: torch.device) -> list[int]:
        """The label whose verbaliser is likeliest after each row's prompt (summed token log-probabilities)."""
        import torch

        seqs, targets = [], []
        for r in rows:
            prompt = r["input_ids"][: r["prompt_length"]]
            for choice in r["choices"]:
                seqs.append(prompt + choice)
                targets.append([IGNORE] * len(prompt) + choice)
        width = max(map(len, seqs))
        ids = torch.tensor([s + [pad] * (width - len(s)) for s in seqs], device=device)
        mask = torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in seqs], device=device)
        labels = torch.tensor([t + [IGNORE] * (width - len(t)) for t in targets], device=device)
        with torch.autocast(**autocast):
            logits = model(input_ids=ids, attention_mask=mask).logits
        logits = logits[:, -width:].float()
        logp = torch.log_softmax(logits[:, :-1], -1)
        gold = labels[:, 1:]
        picked = logp.gather(-1, gold.clamp(min=0).unsqueeze(-1)).squeeze(-1) * (gold != IGNORE)
        scores = picked.sum(-1).view(len(rows), -1)
        return scores.argmax(-1).tolist()

    def metrics(self, preds: list[Any], refs: list[Any], label_names: list[str], loss: float) -> dict[str, float]:
        return {**classification_metrics(preds, refs, label_names), "loss": loss}
