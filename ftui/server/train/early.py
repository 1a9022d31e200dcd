"""Early stopping (Together's hyperparameter names) over the full validation loss at each epoch's end."""

from __future__ import annotations

EARLY_KEYS = ("early_stopping_enabled", "patience", "min_delta", "warmup_evals", "best_checkpoint")


class EarlyStopping:
    """Together's early stopping, over the full validation loss measured at each epoch's end (one evaluation):
    after ``warmup_evals`` evaluations, the job stops when ``patience`` evaluations in a row did not improve on the
    best loss so far by more than ``min_delta``."""

    def __init__(self, patience: int, min_delta: float, warmup_evals: int) -> None:
        self.patience, self.min_delta, self.warmup = patience, min_delta, warmup_evals

    @classmethod
    def of(cls, hp: dict) -> EarlyStopping | None:
        if not hp.get("early_stopping_enabled"):
            return None
        return cls(int(hp.get("patience", 2)), float(hp.get("min_delta", 0.0)), int(hp.get("warmup_evals", 0)))

    def why_stop(self, history: list[dict]) -> str | None:
        losses = [(d["step"], d["full_valid_loss"]) for d in history if "full_valid_loss" in d]
        if len(losses) <= self.warmup:
            return None
        best_step, best = losses[0]
        stale = 0
        for step, loss in losses[1:]:
            if loss < best - self.min_delta:
                best_step, best, stale = step, loss, 0
            else:
                stale += 1
        if stale < self.patience or len(losses) - self.warmup < self.patience:
            return None
        return (f"the full validation loss has not improved on {best} (step {best_step}) by more than "
                f"{self.min_delta} for {stale} evaluation(s) (patience {self.patience})")
