"""What many tests share: the bundled samples and small chat examples. Imported by tests, never a test module."""

from __future__ import annotations

from pathlib import Path

SAMPLES = Path(__file__).resolve().parent.parent / "ftui" / "data" / "samples"
# the fine-tuned model the `tuned_data_dir` fixture (tests/conftest.py) registers: a real adapter, never trained
TUNED_MODEL = "ft:smollm2-135m-instruct:local:marv:0a1b2c3d"


def chat(q: str = "Hi?", a: str = "Hello.", system: str | None = "Be brief.") -> dict:
    msgs = [{"role": "system", "content": system}] if system else []
    return {"messages": msgs + [{"role": "user", "content": q}, {"role": "assistant", "content": a}]}


def chats(n: int) -> list[dict]:
    return [chat(f"Question {i}?", f"Answer {i}.") for i in range(n)]
