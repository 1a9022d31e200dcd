"""Layer boundaries: core never imports textual, openai or torch; the CLI loads nothing heavy up front."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("textual", "openai", "torch", "transformers", "peft", "fastapi", "uvicorn", "httpx")


def loaded_after(code: str) -> set[str]:
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted(m.split('.')[0] for m in sys.modules)))"
    res = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return set(json.loads(res.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize("module", ["ftui.core", "ftui.core.analysis", "ftui.core.rules", "ftui.core.tokens",
                                    "ftui.core.catalog", "ftui.core.stats", "ftui.core.prepare", "ftui.cli.render"])
def test_core_imports_nothing_heavy(module):
    mods = loaded_after(f"import {module}")
    assert not mods & set(HEAVY), mods & set(HEAVY)


def test_core_analysis_run_imports_nothing_heavy(tmp_path):
    from tests.helpers import SAMPLES

    mods = loaded_after("from ftui.core.analysis import analyze; from ftui.core.report import Report; "
                        f"Report.of(analyze({str(SAMPLES / 'marv.jsonl')!r}))")
    assert not mods & set(HEAVY)


def test_cli_module_is_light():
    mods = loaded_after("import ftui.cli")
    assert not mods & (set(HEAVY) | {"numpy", "orjson", "tiktoken", "quicktok"})


@pytest.mark.parametrize("module", ["ftui.core.example", "ftui.core.recipe", "ftui.config", "ftui.errors", "ftui.log"])
def test_pure_modules_import_no_ui(module):
    mods = loaded_after(f"import {module}")
    assert not mods & set(HEAVY), mods & set(HEAVY)


def test_tui_startup_loads_no_openai_or_torch(tmp_path):
    """The app through its first screen (a real headless run on a sample, no backend) never loads openai or torch;
    with a backend they load after the first paint, in the connect worker."""
    from tests.helpers import SAMPLES

    (tmp_path / "c.toml").write_text('backend = "off"\n')
    code = (
        f"import os; os.environ['FTUI_CONFIG_FILE'] = {str(tmp_path / 'c.toml')!r}\n"
        "import asyncio\nfrom ftui.tui.app import FtuiApp\n"
        f"app = FtuiApp({str(SAMPLES / 'broken.jsonl')!r})\n"
        "async def main():\n"
        "    async with app.run_test(size=(100, 30)) as pilot:\n"
        "        await pilot.pause()\n"
        "        ws = [w for w in app.workers if w.group != '_loader']\n"
        "        if ws: await app.workers.wait_for_complete(ws)\n"
        "        await pilot.pause()\n"
        "        assert app.screen.report is not None\n"
        "asyncio.run(main())"
    )
    mods = loaded_after(code)
    assert "textual" in mods  # the probe really ran the app
    assert not mods & {"openai", "torch", "transformers", "peft", "fastapi", "uvicorn", "ray"}


def test_tui_modules_defer_openai():
    """Every workspace module can be imported without the SDK: it loads only when the backend connects."""
    mods = loaded_after("import ftui.tui.app, ftui.tui.jobs_screen, ftui.tui.chat_screen, ftui.tui.files_screen, "
                        "ftui.tui.create_job, ftui.tui.confirm")
    assert "textual" in mods and not mods & {"openai", "torch", "httpx2", "httpx"}


@pytest.mark.parametrize("module", ["ftui.service.profiles", "ftui.service.local", "ftui.service.errors",
                                    "ftui.service.jobs", "ftui.service.results", "ftui.service.client"])
def test_service_never_imports_textual(module):
    mods = loaded_after(f"import {module}")
    assert "textual" not in mods and not mods & {"torch", "transformers", "fastapi"}
    if module != "ftui.service.client":
        assert "openai" not in mods  # only the client loads the SDK


def full_names_after(code: str) -> set[str]:
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    res = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return set(json.loads(res.stdout.strip().splitlines()[-1]))


def test_service_never_imports_the_server():
    """ftui.service reaches a local server through ftui.serveinfo (stdlib only), never through ftui.server."""
    mods = full_names_after("import ftui.service.local, ftui.service.client, ftui.service.jobs, ftui.service.errors,"
                            " ftui.service.profiles, ftui.service.results")
    assert "ftui.serveinfo" in mods
    assert not {m for m in mods if m == "ftui.server" or m.startswith("ftui.server.")}
    info = full_names_after("import ftui.serveinfo")
    assert not {m for m in info if m.startswith("ftui.") and m not in ("ftui.serveinfo",)}


def test_core_report_does_not_import_analysis():
    """analysis -> report, one way: the report module needs no analysis module to load."""
    mods = full_names_after("import ftui.core.report")
    assert "ftui.core.analysis" not in mods


def test_a_server_with_the_local_executor_never_imports_ray(tmp_path):
    """The runner and the HTTP app of `ftui serve` (local executor) load no Ray: it is an optional extra."""
    mods = loaded_after("from ftui.server.executors.runner import Runner; from ftui.server.executors import "
                        "ExecutorConfig, make; from ftui.server.http.app import create_app\n"
                        f"r = Runner({str(tmp_path)!r}, 1, make(ExecutorConfig())); r.recover()\n"
                        f"create_app({str(tmp_path)!r}, None)")
    assert "ray" not in mods and "ftui" in mods
