"""`ftui check`: human output, --json, exit codes."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

from tests.helpers import SAMPLES, chats


def run(*args, env=None):
    return subprocess.run([sys.executable, "-m", "ftui.cli", *map(str, args)], capture_output=True, text=True,
                          env=env)


def test_clean_file_exits_0_with_summary():
    res = run("check", SAMPLES / "marv.jsonl", "--model", "gpt-4.1-mini")
    assert res.returncode == 0, res.stderr
    out = res.stdout
    assert "chat, 16 examples" in out and "no errors" in out
    assert "p10" in out and "p90" in out and "p5" not in out
    assert "6 epochs (auto)" in out and "$" in out


def test_broken_file_exits_1_and_names_lines():
    res = run("check", SAMPLES / "broken.jsonl")
    assert res.returncode == 1
    assert "line 2: invalid JSON" in res.stdout
    assert "line 3 (messages[2].role): message 2 has role robot" in res.stdout
    assert "line 9: same example as line 1" in res.stdout


def test_json_document_shape():
    res = run("check", SAMPLES / "broken.jsonl", "--json", "--model", "gpt-4o-mini")
    assert res.returncode == 1
    doc = json.loads(res.stdout)
    for key in ("path", "format", "model", "encoding", "lines", "examples", "errors", "warnings", "counts", "stats",
                "estimate"):
        assert key in doc, key
    assert doc["format"] == "chat" and doc["model"] == "gpt-4o-mini-2024-07-18" and doc["encoding"] == "o200k_base"
    assert {"line": 2, "code": "invalid_json"}.items() <= doc["errors"][0].items()
    assert set(doc["errors"][0]) == {"line", "code", "message", "path"}
    assert doc["counts"]["duplicate_example"] == 1
    for key in ("messages_per_example", "tokens_per_example", "trainable_tokens_per_example"):
        assert set(doc["stats"][key]) >= {"min", "max", "mean", "median", "p10", "p90"}
    assert set(doc["estimate"]) >= {"n_epochs", "billing_tokens_per_epoch", "billed_tokens", "usd"}
    e = doc["estimate"]
    assert e["billed_tokens"] == e["n_epochs"] * e["billing_tokens_per_epoch"]
    assert e["usd"] == pytest.approx(e["billed_tokens"] * 3.0 / 1e6, abs=1e-4)


def test_several_files_give_an_array_and_the_worst_exit_code(tmp_path):
    missing = tmp_path / "nope.jsonl"
    res = run("check", SAMPLES / "marv.jsonl", missing, "--json")
    assert res.returncode == 2
    docs = json.loads(res.stdout)
    assert isinstance(docs, list) and docs[0]["examples"] == 16
    assert docs[1]["path"] == str(missing) and "no such file" in docs[1]["error"]


def test_unreadable_file_is_a_message_not_a_traceback(tmp_path):
    binary = tmp_path / "model.bin"
    binary.write_bytes(b"\x00\x01" * 1000)
    res = run("check", binary)
    assert res.returncode == 2
    assert "binary" in res.stderr and str(binary) in res.stderr and "Traceback" not in res.stderr


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs Linux's /dev/full (always full)")
@pytest.mark.parametrize("json_out", [False, True])
@pytest.mark.parametrize("unbuffered", [False, True])  # the error comes from print()/write() or from the last flush
def test_a_report_that_cannot_be_written_is_a_message_not_a_traceback(json_out, unbuffered):
    flags = ["--json"] if json_out else []
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"} | ({"PYTHONUNBUFFERED": "1"} if unbuffered
                                                                             else {})
    with open("/dev/full", "w") as full:
        res = subprocess.run([sys.executable, "-m", "ftui.cli", "check", str(SAMPLES / "marv.jsonl"), *flags],
                             stdout=full, stderr=subprocess.PIPE, text=True, env=env)
    assert res.returncode == 2
    assert res.stderr == "ftui check: cannot write the report: No space left on device\n"


def test_a_large_report_arrives_whole(tmp_path):
    """`ftui check` leaves without the interpreter's teardown (cli.entry): all it wrote must be there, from a run
    that used a worker process (a file over the 8 MB parallel threshold)."""
    path = tmp_path / "big.jsonl"
    line = json.dumps({"messages": [{"role": "user", "content": "word " * 200},
                                    {"role": "assistant", "content": "answer " * 20}]})
    n = (9 << 20) // len(line) + 1
    path.write_text((line + "\n") * n)  # no system message: one warning per example, a long report
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}  # stdout buffered, as it usually is
    for flags in (["--json"], ["--all"]):  # --json writes bytes and flushes; the text report is print()ed
        args = ["check", str(path), "--workers", "2", *flags]
        res = subprocess.run([sys.executable, "-m", "ftui.cli", *args], capture_output=True, text=True, env=env)
        # the same command through main() and Python's own exit
        code = f"import sys; from ftui.cli import main; sys.exit(main({args!r}))"
        plain = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
        assert res.returncode == plain.returncode == 0, res.stderr
        timing = re.compile(r"[0-9.]+ s\)|\"seconds\": [0-9.]+")
        assert timing.sub("", res.stdout) == timing.sub("", plain.stdout)
        if flags == ["--json"]:
            doc = json.loads(res.stdout)
            assert doc["examples"] == n and doc["counts"]["missing_system_message"] == n
            assert len(doc["warnings"]) == n + n - 1  # every copy after the first is a duplicate of line 1 too
        else:
            assert f"line {n}: same example as line 1" in res.stdout


def test_bad_usage_exits_2():
    assert run("check").returncode == 2
    assert run("check", SAMPLES / "marv.jsonl", "--epochs", "0").returncode == 2


def test_epochs_and_model_change_the_estimate():
    a = json.loads(run("check", SAMPLES / "marv.jsonl", "--json", "--model", "gpt-4.1").stdout)["estimate"]
    b = json.loads(run("check", SAMPLES / "marv.jsonl", "--json", "--model", "gpt-4.1-nano",
                       "--epochs", "2").stdout)["estimate"]
    assert a["n_epochs"] == 6 and b["n_epochs"] == 2
    assert a["usd"] == pytest.approx(a["billed_tokens"] * 25 / 1e6, abs=1e-4)
    assert b["usd"] == pytest.approx(b["billed_tokens"] * 1.5 / 1e6, abs=1e-4)


def test_warnings_only_exit_0(write_jsonl):
    rows = chats(12) + [chats(1)[0]]
    res = run("check", write_jsonl(rows))
    assert res.returncode == 0 and "duplicate_example" in res.stdout


def test_tui_entry_rejects_a_missing_path_without_a_traceback(tmp_path):
    res = subprocess.run([sys.executable, "-m", "ftui.cli", str(tmp_path / "nope.jsonl")], capture_output=True,
                         text=True)
    assert res.returncode == 2 and "nope.jsonl: no such file or directory" in res.stderr
    assert "Traceback" not in res.stderr


def test_help_mentions_the_app_and_the_commands():
    res = subprocess.run([sys.executable, "-m", "ftui.cli", "--help"], capture_output=True, text=True)
    assert res.returncode == 0 and "ftui [PATH]" in res.stdout and "check" in res.stdout and "serve" in res.stdout


def test_check_piped_into_head_ends_quietly(tmp_path):
    """`ftui check … | head`: the reader goes away; ftui ends by SIGPIPE like any filter, no traceback."""
    import signal

    path = tmp_path / "many.jsonl"
    path.write_text("{not json\n" * 30000)
    proc = subprocess.Popen([sys.executable, "-m", "ftui.cli", "check", str(path), "--all"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    first = proc.stdout.readline()
    proc.stdout.close()  # what `head -1` does after its line
    err = proc.stderr.read().decode()
    proc.wait(60)
    assert first
    assert "Traceback" not in err and "BrokenPipeError" not in err, err
    assert proc.returncode == -signal.SIGPIPE


def test_check_model_defaults_to_the_configs(tmp_path):
    cfg = tmp_path / "config.toml"
    cfg.write_text('default_model = "gpt-4o-mini-2024-07-18"\n')
    env = {**os.environ, "FTUI_CONFIG_FILE": str(cfg)}
    res = run("check", SAMPLES / "marv.jsonl", "--json", env=env)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["model"] == "gpt-4o-mini-2024-07-18"
    res = run("check", SAMPLES / "marv.jsonl", "--json", "--model", "gpt-4.1-mini", env=env)
    assert json.loads(res.stdout)["model"].startswith("gpt-4.1-mini")


def test_a_validation_file_is_checked_as_validation_by_flag_or_by_name(tmp_path):
    """The bundled pair exits 0: marv_valid.jsonl (3 examples) is validation data — no 10-example minimum, nothing
    billed — and so is a file named with --validation; the training file keeps its minimum and its price."""
    res = run("check", SAMPLES / "marv.jsonl", SAMPLES / "marv_valid.jsonl", "--json", "--model", "gpt-4.1-mini")
    assert res.returncode == 0, res.stdout
    train, valid = json.loads(res.stdout)
    assert (train["role"], valid["role"]) == ("training", "validation")
    assert valid["counts"] == {} and valid["estimate"]["billed_tokens"] == 0 and valid["estimate"]["usd"] == 0
    assert train["estimate"]["billed_tokens"] > 0
    held = tmp_path / "held.jsonl"  # a name that says nothing: the flag says it
    held.write_bytes((SAMPLES / "marv_valid.jsonl").read_bytes())
    res = run("check", held)
    assert res.returncode == 1 and "3 example(s); the service needs at least 10" in res.stdout
    res = run("check", SAMPLES / "marv.jsonl", "--validation", held)
    assert res.returncode == 0, res.stdout
    assert f"{held} (validation) — chat, 3 examples" in res.stdout
    assert "tokens per validation pass; not billed" in res.stdout
    res = run("check", "--validation", held, "--json")
    assert res.returncode == 0 and json.loads(res.stdout)["role"] == "validation"


@pytest.mark.parametrize("name,kind", [("reviews.csv", "CSV"), ("rows.tsv", "TSV"), ("rows.parquet", "Parquet")])
def test_a_raw_table_is_sent_to_prepare(tmp_path, name, kind):
    path = tmp_path / name
    path.write_bytes((SAMPLES / "reviews.csv").read_bytes())
    res = run("check", path)
    assert res.returncode == 2 and res.stdout == ""
    assert res.stderr == (f"ftui check: {path} is a {kind} table, not JSONL training data; turn it into "
                          f"train/valid/test JSONL with `ftui prepare {path} --out DIR` (or open it in the app: "
                          f"`ftui {path}`)\n")


def test_check_without_a_file_is_usage():
    res = run("check")
    assert res.returncode == 2 and "name at least one FILE" in res.stderr
