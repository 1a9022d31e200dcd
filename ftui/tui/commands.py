"""Command-palette providers of ftui's own (the built-in commands come from ``App.get_system_commands``)."""

from __future__ import annotations

from functools import partial

from textual.command import Hit, Hits, Provider


class ModelCommands(Provider):
    """'Model: <id>' for every model in the catalog (switch the estimate and the context limit)."""

    async def search(self, query: str) -> Hits:
        from ftui.core import catalog

        matcher = self.matcher(query)
        screen = self.screen  # the screen the palette was opened on
        from .data_screen import DataScreen

        if not isinstance(screen, DataScreen):
            return
        for m in catalog.catalog():
            text = f"Model: {m.id}"
            score = matcher.match(text)
            if score > 0:
                price = f"${m.price_per_1m_tokens:g}/1M training tokens" if m.price_per_1m_tokens else "no token price"
                ctx = f"{m.training_context:,} context" if m.training_context else "context unknown"
                yield Hit(score, matcher.highlight(text), partial(screen.set_model, m.id),
                          help=f"{ctx} · {price}" + (f" · shuts down {m.shutdown_date}" if m.shutdown_date else ""))


class ExportCommands(Provider):
    """'Export model: <id>' for every fine-tuned model and checkpoint the local backend lists."""

    async def search(self, query: str) -> Hits:
        app = self.app
        if getattr(app, "profile", None) is None or app.profile.kind != "local":
            return
        matcher = self.matcher(query)
        for m in app.models:
            if not m["id"].startswith("ft:"):
                continue
            text = f"Export model: {m['id']}"
            score = matcher.match(text)
            if score > 0:
                yield Hit(score, matcher.highlight(text), partial(app.open_export, m["id"]),
                          help="GGUF, Ollama, safetensors, PEFT adapter or vLLM, into a folder you choose")
