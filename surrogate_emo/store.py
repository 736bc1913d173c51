"""The SQLite study: every run's configuration and every evaluation, written as it finishes.

One file can hold many runs (by name). Each finished evaluation is committed at once, so a run killed at any
moment loses at most the evaluation in flight, and a rerun replays what is stored instead of repeating it.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from surrogate_emo.errors import OutputError, StudyError, StudyMismatchError
from surrogate_emo.evaluate import Evaluation

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id INTEGER PRIMARY KEY,
    name TEXT UNIQUE NOT NULL,
    config TEXT NOT NULL,
    created TEXT NOT NULL,
    info TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS evaluations (
    run_id INTEGER NOT NULL REFERENCES runs(run_id),
    trial INTEGER NOT NULL,
    genome TEXT NOT NULL,
    error REAL,
    ratios TEXT NOT NULL,
    status TEXT NOT NULL,
    reason TEXT NOT NULL,
    steps INTEGER NOT NULL,
    seconds REAL NOT NULL,
    seed INTEGER NOT NULL,
    source TEXT NOT NULL,
    extra TEXT NOT NULL,
    finished TEXT NOT NULL,
    PRIMARY KEY (run_id, trial)
);
"""


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class Study:
    """An SQLite file of runs and their evaluations.

    Example:
        >>> study = Study(":memory:")
        >>> run_id = study.open_run("demo", {"seed": 0})
        >>> study.evaluations(run_id)
        {}
    """

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        db = None
        try:
            if self.path != ":memory:":
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path)
            db.execute("PRAGMA journal_mode=WAL")  # readers (reports) never block the writing run
            db.executescript(SCHEMA)
        except (OSError, sqlite3.DatabaseError) as error:
            if db is not None:
                db.close()
            # a file that is not a database (garbage, truncated) fails here, before anything is written to it
            if isinstance(error, OSError) or "unable to open" in str(error) or "readonly" in str(error):
                raise OutputError.writing(self.path, error) from error
            if isinstance(error, sqlite3.OperationalError):  # locked, busy: not the file's fault
                raise
            raise StudyError(f"{self.path} is not a readable SQLite study ({error}); it was left as it is: move "
                             "it aside, or pass another --study or --output-dir") from error
        self._db = db

    def close(self) -> None:
        self._db.close()

    def open_run(self, name: str, config: dict, ignore: tuple[str, ...] = (), assumed: dict | None = None) -> int:
        """Create run ``name`` or reopen it; reopening with a different ``config`` (outside ``ignore``) is an error."""
        self.check_run(name, config, ignore, assumed)
        row = self._db.execute("SELECT run_id FROM runs WHERE name = ?", (name,)).fetchone()
        if row is not None:
            return int(row[0])
        with self._db:
            cursor = self._db.execute("INSERT INTO runs (name, config, created) VALUES (?, ?, ?)",
                                      (name, json.dumps(config, sort_keys=True, default=str), _now()))
        return int(cursor.lastrowid)

    def check_run(self, name: str, config: dict, ignore: tuple[str, ...] = (), assumed: dict | None = None) -> None:
        """Raise `StudyMismatchError` naming the differing keys if run ``name`` exists with another ``config``.

        Only keys both configurations hold are compared: a key the stored run lacks was added by a later version
        of the package, and one the given configuration lacks no longer defines a run (it became resumable).
        ``assumed`` gives the value a stored run had for a key it lacks, where the key's arrival changed results."""
        row = self._db.execute("SELECT config FROM runs WHERE name = ?", (name,)).fetchone()
        if row is None:
            return
        stored = {**(assumed or {}), **json.loads(row[0])}
        current = json.loads(json.dumps(config, default=str))
        changed = sorted(key for key in set(stored) & set(current)
                         if key not in ignore and stored[key] != current[key])
        if changed:
            details = "; ".join(f"{key}: stored {stored[key]!r}, given {current[key]!r}" for key in changed)
            raise StudyMismatchError(f"run {name!r} in {self.path} was started with another configuration ({details}). "
                                     "Resume it with the same settings, or choose another run name.")

    def set_info(self, run_id: int, **info) -> None:
        """Merge JSON-able facts about a run (dense errors, timings, ...) into its ``info``."""
        current = self.info(run_id)
        current.update(info)
        with self._db:
            self._db.execute("UPDATE runs SET info = ? WHERE run_id = ?", (json.dumps(current, default=str), run_id))

    def config(self, run_id: int) -> dict:
        """The configuration a run was opened with (what `open_run` stored)."""
        return json.loads(self._db.execute("SELECT config FROM runs WHERE run_id = ?", (run_id,)).fetchone()[0])

    def info(self, run_id: int) -> dict:
        return json.loads(self._db.execute("SELECT info FROM runs WHERE run_id = ?", (run_id,)).fetchone()[0])

    def mark_pending(self, run_id: int, trials: list[int], genomes: np.ndarray, notes: list[dict] | None = None) -> None:
        """Note the genomes of a batch (and what each was asked with: ``notes``) before it is evaluated, so a
        resumed run can finish the same batch."""
        notes = [{} for _ in trials] if notes is None else notes
        with self._db:
            self._db.executemany(
                "INSERT INTO evaluations VALUES (?, ?, ?, NULL, '{}', 'pending', '', 0, 0.0, 0, '', ?, ?)",
                [(run_id, t, json.dumps([float(g) for g in x]), json.dumps(note), _now())
                 for t, x, note in zip(trials, genomes, notes)])

    def record(self, run_id: int, trial: int, evaluation: Evaluation) -> None:
        """Write one finished evaluation (replacing its pending row, if any) and commit at once."""
        e = evaluation
        error = None if not np.isfinite(e.error) else float(e.error)
        with self._db:
            self._db.execute("DELETE FROM evaluations WHERE run_id = ? AND trial = ? AND status = 'pending'",
                             (run_id, trial))
            self._db.execute(
                "INSERT INTO evaluations VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (run_id, trial, json.dumps([float(g) for g in e.genome]), error, json.dumps(e.ratios), e.status,
                 e.reason, int(e.steps), float(e.seconds), int(e.seed), e.source, json.dumps(e.extra), _now()))

    def evaluations(self, run_id: int, pending: bool = False) -> dict[int, Evaluation]:
        """Finished evaluations of a run by trial number, in trial order; with ``pending``, also the genomes
        asked for but not finished when the run stopped (status ``"pending"``)."""
        rows = self._db.execute(
            "SELECT trial, genome, error, ratios, status, reason, steps, seconds, seed, source, extra "
            "FROM evaluations WHERE run_id = ? AND (? OR status != 'pending') ORDER BY trial",
            (run_id, pending)).fetchall()
        return {row[0]: Evaluation(np.array(json.loads(row[1]), dtype=np.float64),
                                   float("nan") if row[2] is None else row[2], json.loads(row[3]), row[4], row[5],
                                   row[6], row[7], row[8], row[9], json.loads(row[10]), trial=row[0])
                for row in rows}

    def count(self, run_id: int) -> int:
        """How many evaluations of a run finished (`evaluations` without the pending ones), without reading them."""
        return int(self._db.execute("SELECT COUNT(*) FROM evaluations WHERE run_id = ? AND status != 'pending'",
                                    (run_id,)).fetchone()[0])

    def run_id(self, name: str) -> int:
        row = self._db.execute("SELECT run_id FROM runs WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise StudyMismatchError(f"{self.path} holds no run {name!r}; it holds {self.run_names()}")
        return int(row[0])

    def run_names(self) -> list[str]:
        return [row[0] for row in self._db.execute("SELECT name FROM runs ORDER BY run_id")]
