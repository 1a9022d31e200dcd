"""The results CSV of a finished job (``step,train_loss,train_accuracy,valid_loss,valid_mean_token_accuracy``, more
columns allowed), served plain or base64-encoded (OpenAI encodes it). Pure Python."""

from __future__ import annotations

import base64
import binascii
import csv
import io

from ..errors import FtuiError

# CSV column -> the metric-series name used for metrics events
COLUMNS = {"train_loss": "train_loss", "train_accuracy": "train_mean_token_accuracy",
           "train_mean_token_accuracy": "train_mean_token_accuracy", "valid_loss": "valid_loss",
           "valid_mean_token_accuracy": "valid_mean_token_accuracy", "full_valid_loss": "full_valid_loss",
           "full_valid_mean_token_accuracy": "full_valid_mean_token_accuracy",
           # DPO: reward accuracy under its own name (never drawn as token accuracy)
           "train_mean_reward_accuracy": "train_mean_reward_accuracy",
           "valid_mean_reward_accuracy": "valid_mean_reward_accuracy",
           "full_valid_mean_reward_accuracy": "full_valid_mean_reward_accuracy",
           # reinforcement: the reward and the share of groups that taught nothing
           "train_mean_reward": "train_mean_reward", "full_valid_mean_reward": "full_valid_mean_reward",
           "frac_reward_zero_std": "frac_reward_zero_std"}


class ResultsError(FtuiError, ValueError):
    pass


def decode(raw: bytes) -> str:
    """Plain CSV text, whether ``raw`` was plain or base64."""
    text = raw.lstrip()
    if not text.startswith(b"step"):
        try:
            text = base64.b64decode(raw, validate=False)
        except (binascii.Error, ValueError):
            raise ResultsError("the results file is neither CSV nor base64-encoded CSV") from None
    try:
        out = text.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ResultsError("the results file is not UTF-8 text") from None
    if not out.lstrip().startswith("step"):
        raise ResultsError("the results file does not start with a 'step' column")
    return out


def parse(raw: bytes) -> dict[str, list[tuple[int, float]]]:
    """-> {series: [(step, value), …]} (empty cells skipped)."""
    series: dict[str, list[tuple[int, float]]] = {}
    for row in csv.DictReader(io.StringIO(decode(raw))):
        try:
            step = int(float(row.get("step") or ""))
        except ValueError:
            continue
        for col, name in COLUMNS.items():
            cell = (row.get(col) or "").strip()
            if not cell:
                continue
            try:
                series.setdefault(name, []).append((step, float(cell)))
            except ValueError:
                continue
    return series
