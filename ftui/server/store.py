"""The local backend's state: SQLite (WAL) for rows, plain files for blobs, under one data dir.

Shared by the API process and the trainer process; each opens its own connection. Everything written to disk
outside SQLite goes through :func:`atomic_write` or a rename of a finished folder.
"""

from __future__ import annotations

import json
import os
import secrets
import sqlite3
import time
from pathlib import Path

from ftui.core.files import atomic_write, sha256_of

CURRENT = "runner.current"  # the job the runner is on (the supervisor fails it if the runner dies)

SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
    id TEXT PRIMARY KEY, filename TEXT NOT NULL, purpose TEXT NOT NULL, bytes INTEGER NOT NULL,
    created_at INTEGER NOT NULL, seq INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY, seq INTEGER NOT NULL, created_at INTEGER NOT NULL, model TEXT NOT NULL,
    training_file TEXT NOT NULL, validation_file TEXT, status TEXT NOT NULL, method TEXT NOT NULL,
    suffix TEXT, seed INTEGER NOT NULL, metadata TEXT, fine_tuned_model TEXT, error TEXT,
    finished_at INTEGER, estimated_finish INTEGER, trained_tokens INTEGER, result_files TEXT NOT NULL DEFAULT '[]',
    step INTEGER NOT NULL DEFAULT 0, total_steps INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT UNIQUE NOT NULL, job_id TEXT NOT NULL, created_at INTEGER NOT NULL,
    level TEXT NOT NULL, message TEXT NOT NULL, type TEXT NOT NULL, data TEXT);
CREATE INDEX IF NOT EXISTS events_job ON events(job_id, seq);
CREATE TABLE IF NOT EXISTS checkpoints (
    id TEXT PRIMARY KEY, job_id TEXT NOT NULL, created_at INTEGER NOT NULL, step_number INTEGER NOT NULL,
    model TEXT NOT NULL, metrics TEXT NOT NULL, path TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS models (
    id TEXT PRIMARY KEY, created_at INTEGER NOT NULL, owned_by TEXT NOT NULL, job_id TEXT, path TEXT NOT NULL,
    base TEXT NOT NULL);
"""

TERMINAL = ("succeeded", "failed", "cancelled")


def root_base(model: str) -> str:
    """The base model under a job's model: itself, or for a fine-tuned model or checkpoint (``ft:BASE:org:suffix:id``,
    ``…:ckpt-step-N``) the base its name begins with — a continued model's adapter still applies to that base."""
    return model.split(":")[1] if model.startswith("ft:") and model.count(":") >= 4 else model


def parent_of(job: dict | None) -> str | None:
    """The fine-tuned model (or checkpoint) a job continued training, if it did."""
    return job["model"] if job and job["model"].startswith("ft:") else None

# A paused job's `pause` column says whether its trainer has stopped: "requested" (the API set `paused`, the
# trainer has not seen it yet: it is still training, or still loading the model) or "held" (nothing trains it: the
# trainer stopped and saved its state, or the job was paused while queued). A resume of a "requested" pause just
# lets the trainer go on; a resume of a "held" one queues the job to restart from its saved state.
REQUESTED, HELD = "requested", "held"


def _migrate(db: sqlite3.Connection) -> None:
    """Bring a data dir written by an older ftui up to this schema (idempotent; in one write transaction, as the
    API process and the runner open the store at the same moment)."""
    db.execute("BEGIN IMMEDIATE")
    try:
        columns = {r[1] for r in db.execute("PRAGMA table_info(jobs)")}
        if "pause" not in columns:
            db.execute("ALTER TABLE jobs ADD COLUMN pause TEXT")
        if "executor" not in columns:  # where the job trains: {"name", "workers", "where"} (None: here, local)
            db.execute("ALTER TABLE jobs ADD COLUMN executor TEXT")
        if "sha256" not in {r[1] for r in db.execute("PRAGMA table_info(files)")}:  # a file's content hash
            db.execute("ALTER TABLE files ADD COLUMN sha256 TEXT")  # (older files: computed when first asked)
        if db.execute("SELECT 1 FROM sqlite_master WHERE name='checkpoint_step'").fetchone() is None:
            # older runners wrote a second row for a checkpoint trained again after a resume: keep the newest
            db.execute("DELETE FROM checkpoints WHERE rowid NOT IN (SELECT MAX(rowid) FROM checkpoints "
                       "GROUP BY job_id, step_number)")
            db.execute("CREATE UNIQUE INDEX checkpoint_step ON checkpoints(job_id, step_number)")
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise


def new_id(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(12)}"


def now() -> int:
    return int(time.time())


class Store:
    def __init__(self, data_dir: str | os.PathLike) -> None:
        self.dir = Path(data_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "files").mkdir(exist_ok=True)
        (self.dir / "jobs").mkdir(exist_ok=True)
        self.db = sqlite3.connect(self.dir / "ftui.sqlite3", timeout=30, isolation_level=None,
                                  check_same_thread=False)
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(SCHEMA)
        _migrate(self.db)

    def close(self) -> None:
        self.db.close()

    # -- files -------------------------------------------------------------------------------------------------
    def file_path(self, file_id: str) -> Path:
        return self.dir / "files" / file_id

    def add_file(self, filename: str, purpose: str, data: bytes) -> dict:
        import hashlib

        fid = new_id("file")
        atomic_write(self.file_path(fid), data)
        return self._register_file(fid, filename, purpose, len(data), hashlib.sha256(data).hexdigest())

    def incoming(self) -> Path:
        """A temp file in the files dir for an upload streamed to disk (then ``adopt_file`` renames it in place)."""
        import tempfile

        d = self.dir / "files"
        d.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=d, prefix=".incoming-")
        os.close(fd)
        return Path(tmp)

    def adopt_file(self, tmp: Path, filename: str, purpose: str) -> dict:
        fid = new_id("file")
        size = tmp.stat().st_size
        digest = sha256_of(tmp)  # in the caller's thread (the routes adopt in one), before the file is public
        os.replace(tmp, self.file_path(fid))
        return self._register_file(fid, filename, purpose, size, digest)

    def _register_file(self, fid: str, filename: str, purpose: str, size: int, digest: str | None) -> dict:
        seq = self.db.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM files").fetchone()[0]
        self.db.execute("INSERT INTO files (id, filename, purpose, bytes, created_at, seq, sha256) VALUES "
                        "(?,?,?,?,?,?,?)", (fid, filename, purpose, size, now(), seq, digest))
        return self.get_file(fid)

    def get_file(self, file_id: str) -> dict | None:
        row = self.db.execute("SELECT * FROM files WHERE id=?", (file_id,)).fetchone()
        return dict(row) if row else None

    def file_sha256(self, file_id: str) -> str | None:
        """A file's content hash, computed and kept the first time for a file stored before ftui kept them."""
        f = self.get_file(file_id)
        if f is None:
            return None
        if not f.get("sha256"):
            try:
                f["sha256"] = sha256_of(self.file_path(file_id))
            except OSError:
                return None
            self.db.execute("UPDATE files SET sha256=? WHERE id=?", (f["sha256"], file_id))
        return f["sha256"]

    def list_files(self, purpose: str | None, limit: int, order: str, after: str | None) -> list[dict]:
        sql, args = "SELECT * FROM files WHERE 1=1", []
        if purpose:
            sql += " AND purpose=?"
            args.append(purpose)
        op = "<" if order == "desc" else ">"
        if after:
            row = self.get_file(after)
            if row:
                sql += f" AND seq {op} ?"
                args.append(row["seq"])
        sql += f" ORDER BY seq {'DESC' if order == 'desc' else 'ASC'} LIMIT ?"
        args.append(limit)
        return [dict(r) for r in self.db.execute(sql, args)]

    def delete_file(self, file_id: str) -> bool:
        cur = self.db.execute("DELETE FROM files WHERE id=?", (file_id,))
        try:
            self.file_path(file_id).unlink()
        except FileNotFoundError:
            pass
        return cur.rowcount > 0

    # -- jobs --------------------------------------------------------------------------------------------------
    def add_job(self, **fields) -> dict:
        seq = self.db.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM jobs").fetchone()[0]
        fields = {**fields, "seq": seq}
        fields["method"] = json.dumps(fields["method"])
        fields["metadata"] = json.dumps(fields["metadata"]) if fields.get("metadata") is not None else None
        fields["executor"] = json.dumps(fields["executor"]) if fields.get("executor") is not None else None
        cols = ", ".join(fields)
        self.db.execute(f"INSERT INTO jobs ({cols}) VALUES ({', '.join('?' * len(fields))})", list(fields.values()))
        return self.get_job(fields["id"])

    def get_job(self, job_id: str) -> dict | None:
        row = self.db.execute("SELECT * FROM jobs WHERE id=?", (job_id,)).fetchone()
        return _job(row) if row else None

    def list_jobs(self, limit: int, after: str | None) -> list[dict]:
        sql, args = "SELECT * FROM jobs", []
        if after:
            row = self.get_job(after)
            if row:
                sql += " WHERE seq < ?"
                args.append(row["seq"])
        sql += " ORDER BY seq DESC LIMIT ?"
        args.append(limit)
        return [_job(r) for r in self.db.execute(sql, args)]

    def update_job(self, job_id: str, **fields) -> None:
        fields = _encode(fields)
        sets = ", ".join(f"{k}=?" for k in fields)
        self.db.execute(f"UPDATE jobs SET {sets} WHERE id=?", [*fields.values(), job_id])

    def set_status_if(self, job_id: str, expected: tuple[str, ...], status: str, **fields) -> bool:
        """Compare-and-set on the status (the API and the trainer race on it)."""
        fields = _encode(fields)
        sets = ", ".join(["status=?"] + [f"{k}=?" for k in fields])
        marks = ",".join("?" * len(expected))
        cur = self.db.execute(f"UPDATE jobs SET {sets} WHERE id=? AND status IN ({marks})",
                              [status, *fields.values(), job_id, *expected])
        return cur.rowcount > 0

    # -- pause and resume: the API and the trainer agree through compare-and-set on (status, pause) ------------
    def request_pause(self, job_id: str) -> bool:
        """running -> paused (the trainer still has to stop: "requested"); queued -> paused ("held" at once)."""
        if self.db.execute("UPDATE jobs SET status='paused', pause=? WHERE id=? AND status='running'",
                           (REQUESTED, job_id)).rowcount:
            return True
        return self.db.execute("UPDATE jobs SET status='paused', pause=? WHERE id=? AND status='queued'",
                               (HELD, job_id)).rowcount > 0

    def acknowledge_pause(self, job_id: str) -> bool:
        """The trainer takes a requested pause (True: it must stop now); False when a resume came first."""
        return self.db.execute("UPDATE jobs SET pause=? WHERE id=? AND status='paused' AND "
                               "(pause=? OR pause IS NULL)", (HELD, job_id, REQUESTED)).rowcount > 0

    def resume(self, job_id: str) -> str | None:
        """paused -> "running" when the trainer never stopped (it just goes on, nothing is trained twice), or
        "queued" to restart from the saved state; None when the job was not paused."""
        if self.db.execute("UPDATE jobs SET status='running', pause=NULL WHERE id=? AND status='paused' AND "
                           "pause=?", (job_id, REQUESTED)).rowcount:
            return "running"
        if self.db.execute("UPDATE jobs SET status='queued', pause=NULL WHERE id=? AND status='paused'",
                           (job_id,)).rowcount:
            return "queued"
        return None

    def release_pauses(self) -> int:
        """No trainer runs (a runner starting, or the one that had the job died): every pause is held."""
        return self.db.execute("UPDATE jobs SET pause=? WHERE status='paused' AND (pause IS NULL OR pause!=?)",
                               (HELD, HELD)).rowcount

    def finish_if_running(self, job_id: str, **fields) -> bool:
        """running -> succeeded, also when a pause arrived that the trainer never took (it finished first)."""
        fields = _encode(fields)
        sets = ", ".join(["status='succeeded'", "pause=NULL"] + [f"{k}=?" for k in fields])
        return self.db.execute(f"UPDATE jobs SET {sets} WHERE id=? AND (status='running' OR (status='paused' "
                               "AND pause=?))", [*fields.values(), job_id, REQUESTED]).rowcount > 0

    def next_job(self) -> dict | None:
        row = self.db.execute("SELECT * FROM jobs WHERE status IN ('validating_files', 'queued') ORDER BY seq "
                              "LIMIT 1").fetchone()
        return _job(row) if row else None

    # -- events ------------------------------------------------------------------------------------------------
    def add_event(self, job_id: str, message: str, level: str = "info", type: str = "message",
                  data: dict | None = None) -> None:
        self.db.execute("INSERT INTO events (id, job_id, created_at, level, message, type, data) VALUES "
                        "(?,?,?,?,?,?,?)", (new_id("ftevent"), job_id, now(), level, message, type,
                                            json.dumps(data) if data is not None else None))

    def has_event(self, job_id: str, event_id: str) -> bool:
        row = self.db.execute("SELECT 1 FROM events WHERE id=? AND job_id=?", (event_id, job_id)).fetchone()
        return row is not None

    def list_events(self, job_id: str, limit: int, after: str | None) -> tuple[list[dict], bool]:
        sql, args = "SELECT * FROM events WHERE job_id=?", [job_id]
        if after:
            row = self.db.execute("SELECT seq FROM events WHERE id=?", (after,)).fetchone()
            if row:
                sql += " AND seq < ?"
                args.append(row["seq"])
        sql += " ORDER BY seq DESC LIMIT ?"
        args.append(limit + 1)
        rows = [dict(r) for r in self.db.execute(sql, args)]
        for r in rows:
            r["data"] = json.loads(r["data"]) if r["data"] else {}
        return rows[:limit], len(rows) > limit

    # -- checkpoints and models --------------------------------------------------------------------------------
    def add_checkpoint(self, job_id: str, step: int, model: str, metrics: dict, path: str) -> None:
        """One row per (job, step): a step saved again (trained again after a restart) replaces its row and keeps
        its id."""
        self.db.execute("INSERT INTO checkpoints VALUES (?,?,?,?,?,?,?) ON CONFLICT(job_id, step_number) DO UPDATE "
                        "SET created_at=excluded.created_at, model=excluded.model, metrics=excluded.metrics, "
                        "path=excluded.path", (new_id("ftckpt"), job_id, now(), step, model, json.dumps(metrics),
                                               path))

    def forget_steps_after(self, job_id: str, step: int) -> int:
        """A job that restarts from the state saved at ``step`` trains the steps after it again: their earlier
        reports (metrics and checkpoint events, rollouts) go, so every step is reported once, by the run that
        counts."""
        folder = self.rollouts_dir(job_id)
        for path in folder.glob("step-*.jsonl") if folder.is_dir() else []:
            if path.stem.removeprefix("step-").isdigit() and int(path.stem.removeprefix("step-")) > step:
                path.unlink(missing_ok=True)
        return self.db.execute("DELETE FROM events WHERE job_id=? AND data IS NOT NULL AND (type='metrics' OR "
                               "message LIKE 'Checkpoint created%') AND CAST(json_extract(data, '$.step') AS "
                               "INTEGER) > ?", (job_id, step)).rowcount

    # -- rollouts: what an RFT job's model answered at each validation step, and the rewards -----------------------
    def rollouts_dir(self, job_id: str) -> Path:
        return self.dir / "jobs" / job_id / "rollouts"

    def add_rollouts(self, job_id: str, step: int, summary: dict, prompts: list[dict]) -> None:
        """One validation step's prompts with their samples and rewards: a JSONL file whose first line is the
        step's summary (listing the steps reads only first lines), written atomically; a step trained again after a
        restart replaces its file."""
        head = {"step": step, "created_at": now(), "prompts": len(prompts),
                "samples": sum(len(p["samples"]) for p in prompts), **summary}
        lines = [json.dumps(head, ensure_ascii=False)] + [json.dumps(p, ensure_ascii=False) for p in prompts]
        atomic_write(self.rollouts_dir(job_id) / f"step-{step:06d}.jsonl", ("\n".join(lines) + "\n").encode())

    def rollout_steps(self, job_id: str) -> list[dict]:
        """Each validation step's summary, by step."""
        out = []
        folder = self.rollouts_dir(job_id)
        for path in sorted(folder.glob("step-*.jsonl")) if folder.is_dir() else []:
            try:
                with open(path, encoding="utf-8") as fh:
                    out.append(json.loads(fh.readline()))
            except (OSError, ValueError):
                continue  # removed while listing (a restart forgetting steps)
        return out

    def rollouts(self, job_id: str, step: int) -> tuple[dict, list[dict]] | None:
        """One validation step's summary and prompts, or None when the step has none."""
        try:
            with open(self.rollouts_dir(job_id) / f"step-{step:06d}.jsonl", encoding="utf-8") as fh:
                head = json.loads(fh.readline())
                return head, [json.loads(line) for line in fh if line.strip()]
        except (OSError, ValueError):
            return None

    def list_checkpoints(self, job_id: str) -> list[dict]:
        rows = self.db.execute("SELECT * FROM checkpoints WHERE job_id=? ORDER BY step_number DESC", (job_id,))
        out = []
        for r in rows:
            d = dict(r)
            d["metrics"] = json.loads(d["metrics"])
            out.append(d)
        return out

    def delete_checkpoint(self, ckpt_id: str, files: bool = False) -> None:
        row = self.db.execute("SELECT path FROM checkpoints WHERE id=?", (ckpt_id,)).fetchone()
        self.db.execute("DELETE FROM checkpoints WHERE id=?", (ckpt_id,))
        if files and row and row["path"]:
            _remove_tree(Path(row["path"]))

    def delete_checkpoint_model(self, model: str) -> bool:
        """Every row that answers to this checkpoint model name, and its folder."""
        rows = self.db.execute("SELECT id, path FROM checkpoints WHERE model=?", (model,)).fetchall()
        for r in rows:
            self.delete_checkpoint(r["id"], files=True)
        return bool(rows)

    def find_checkpoint(self, model: str) -> dict | None:
        row = self.db.execute("SELECT * FROM checkpoints WHERE model=?", (model,)).fetchone()
        return dict(row) if row else None

    def add_model(self, model_id: str, owned_by: str, job_id: str, path: str, base: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO models VALUES (?,?,?,?,?,?)", (model_id, now(), owned_by, job_id,
                                                                                path, base))

    def tuned(self, model_id: str) -> dict | None:
        """A fine-tuned model or one of its checkpoints: {"base" (the base model its adapter applies to), "path" (its
        adapter), "created_at", "job_id", "parent" (the fine-tuned model its job continued, or None)}."""
        m = self.get_model(model_id)
        if m is not None:
            job = self.get_job(m["job_id"]) if m["job_id"] else None
            return {"base": m["base"], "path": m["path"], "created_at": m["created_at"], "job_id": m["job_id"],
                    "parent": parent_of(job)}
        ck = self.find_checkpoint(model_id)
        job = self.get_job(ck["job_id"]) if ck is not None else None
        if ck is None or job is None:
            return None
        return {"base": root_base(job["model"]), "path": ck["path"], "created_at": ck["created_at"],
                "job_id": job["id"], "parent": parent_of(job)}

    def get_model(self, model_id: str) -> dict | None:
        row = self.db.execute("SELECT * FROM models WHERE id=?", (model_id,)).fetchone()
        return dict(row) if row else None

    def list_models(self) -> list[dict]:
        return [dict(r) for r in self.db.execute("SELECT * FROM models ORDER BY created_at")]

    def delete_model(self, model_id: str) -> list[str]:
        """Delete a fine-tuned model — its folder, its job's checkpoints (rows and folders) and saved state — or a
        checkpoint model by itself. Returns the model ids that no longer answer ([] when nothing was ours)."""
        m = self.get_model(model_id)
        if m is not None:
            self.db.execute("DELETE FROM models WHERE id=?", (model_id,))
            gone = [model_id]
            for c in self.list_checkpoints(m["job_id"]):
                self.delete_checkpoint(c["id"], files=True)
                gone.append(c["model"])
            _remove_tree(Path(m["path"]))
            _remove_tree(self.dir / "jobs" / m["job_id"] / "state")
            return gone
        return [model_id] if self.delete_checkpoint_model(model_id) else []

    # -- a replica's rows (a job trained elsewhere: executors): written with the ids and times they were made with ----
    def import_event(self, e: dict) -> None:
        self.db.execute("INSERT OR IGNORE INTO events (id, job_id, created_at, level, message, type, data) VALUES "
                        "(?,?,?,?,?,?,?)", (e["id"], e["job_id"], e["created_at"], e["level"], e["message"],
                                            e["type"], json.dumps(e["data"]) if e.get("data") else None))

    def delete_events(self, job_id: str, ids: list[str]) -> None:
        self.db.executemany("DELETE FROM events WHERE job_id=? AND id=?", [(job_id, i) for i in ids])

    def throughput(self, model: str, newest: int = 10) -> dict[str, dict]:
        """Measured training speed of jobs on ``model`` here, per method: {"tokens_per_second", "jobs",
        "seconds_per_job"} over the newest ``newest`` succeeded jobs that were never paused, timed from their
        "Fine-tuning job started" event to their end (what the app's estimates of a new job's duration use)."""
        rows = self.db.execute("SELECT id, method, trained_tokens, finished_at FROM jobs WHERE model=? AND "
                               "status='succeeded' AND trained_tokens > 0 ORDER BY seq DESC LIMIT ?",
                               (model, newest * 3)).fetchall()
        seen: dict[str, list[tuple[int, int]]] = {}
        for r in rows:
            kind = json.loads(r["method"]).get("type", "supervised")
            if len(seen.setdefault(kind, [])) >= newest:
                continue
            times = self.db.execute(
                "SELECT MIN(CASE WHEN message LIKE 'Fine-tuning job started%' THEN created_at END) AS started, "
                "SUM(message LIKE 'Fine-tuning job paused%') AS paused FROM events WHERE job_id=?",
                (r["id"],)).fetchone()
            if times["started"] is None or times["paused"]:
                continue
            seen[kind].append((r["trained_tokens"], max(1, r["finished_at"] - times["started"])))
        return {kind: {"tokens_per_second": round(sum(t for t, _ in runs) / sum(s for _, s in runs), 1),
                       "jobs": len(runs), "seconds_per_job": round(sum(s for _, s in runs) / len(runs), 1)}
                for kind, runs in seen.items() if runs}

    def events_of(self, job_id: str) -> list[dict]:
        """Every event of a job, oldest first, as stored (``data`` decoded)."""
        rows = [dict(r) for r in self.db.execute("SELECT * FROM events WHERE job_id=? ORDER BY seq", (job_id,))]
        for r in rows:
            r["data"] = json.loads(r["data"]) if r["data"] else None
        return rows

    def import_file(self, f: dict) -> None:
        seq = self.db.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM files").fetchone()[0]
        self.db.execute("INSERT OR IGNORE INTO files (id, filename, purpose, bytes, created_at, seq, sha256) VALUES "
                        "(?,?,?,?,?,?,?)", (f["id"], f["filename"], f["purpose"], f["bytes"], f["created_at"], seq,
                                            f.get("sha256")))

    def import_checkpoints(self, job_id: str, rows: list[dict]) -> None:
        """The job's checkpoints become ``rows`` (ids kept): those not among them go (rows only)."""
        keep = [r["id"] for r in rows]
        self.db.execute(f"DELETE FROM checkpoints WHERE job_id=? AND id NOT IN ({','.join('?' * len(keep))})",
                        [job_id, *keep])
        for r in rows:
            self.db.execute("INSERT OR REPLACE INTO checkpoints VALUES (?,?,?,?,?,?,?)",
                            (r["id"], job_id, r["created_at"], r["step_number"], r["model"],
                             json.dumps(r["metrics"]) if not isinstance(r["metrics"], str) else r["metrics"],
                             r["path"]))

    def import_model(self, m: dict) -> None:
        self.db.execute("INSERT OR REPLACE INTO models VALUES (?,?,?,?,?,?)", (m["id"], m["created_at"], m["owned_by"],
                                                                                m["job_id"], m["path"], m["base"]))

    def import_job(self, j: dict) -> None:
        """A job row as another store holds it (a worker's replica is seeded with the job it trains)."""
        fields = {k: v for k, v in j.items() if k != "seq"}
        fields["metadata"] = json.dumps(fields["metadata"]) if fields.get("metadata") is not None else None
        fields = _encode(fields)
        seq = self.db.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM jobs").fetchone()[0]
        fields["seq"] = seq
        cols = ", ".join(fields)
        self.db.execute(f"INSERT OR REPLACE INTO jobs ({cols}) VALUES ({', '.join('?' * len(fields))})",
                        list(fields.values()))


def _encode(fields: dict) -> dict:
    return {k: json.dumps(v) if k in ("error", "method", "result_files", "executor") and v is not None else v
            for k, v in fields.items()}


def _job(row: sqlite3.Row) -> dict:
    d = dict(row)
    d["method"] = json.loads(d["method"])
    d["metadata"] = json.loads(d["metadata"]) if d["metadata"] else None
    d["error"] = json.loads(d["error"]) if d["error"] else None
    d["result_files"] = json.loads(d["result_files"] or "[]")
    d["executor"] = json.loads(d["executor"]) if d.get("executor") else None
    return d


def _remove_tree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)
