"""A size-bounded, checksummed disk cache of fine-tuned compressed models, keyed by genome, for warm starts.

A new candidate can start from the nearest cached model whose structure holds its own (in every layer at least
its rank and its kept entries), re-compressed from the cached effective weights, instead of from the dense base
model. Files are plain tensor state dicts loaded with ``weights_only=True``: nothing arbitrary is unpickled.
"""

from __future__ import annotations

import hashlib
import io
import json
import sqlite3
import warnings
from pathlib import Path

import numpy as np
import torch

from surrogate_emo.errors import OutputError, SurrogateEMOWarning

SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    key TEXT PRIMARY KEY,
    genome TEXT NOT NULL,
    label TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    bytes INTEGER NOT NULL,
    used INTEGER NOT NULL,
    kept INTEGER NOT NULL DEFAULT 0
);
"""


def genome_key(genome: np.ndarray) -> str:
    return hashlib.sha256(np.asarray(genome, dtype=np.float64).tobytes()).hexdigest()[:32]


def _connect(path: Path) -> sqlite3.Connection:
    """An open index with its schema; `OutputError` if it cannot be written, `sqlite3.DatabaseError` if it is
    not a database."""
    db = None
    try:
        db = sqlite3.connect(path, timeout=60)
        db.executescript(SCHEMA)
        db.execute("SELECT COUNT(*) FROM entries").fetchone()
    except sqlite3.DatabaseError as error:
        if db is not None:
            db.close()
        if isinstance(error, sqlite3.OperationalError) and ("unable to open" in str(error) or "readonly" in str(error)):
            raise OutputError.writing(path, error) from error
        raise
    return db


class ModelCache:
    """Fine-tuned models on disk under ``directory``, evicted least-recently-used past ``max_bytes``, except those
    marked with `keep` (a run keeps its current Pareto front, so the final front's models are never lost).

    Example:
        >>> import tempfile
        >>> cache = ModelCache(tempfile.mkdtemp(), max_bytes=10_000)
        >>> cache.put(np.array([0.5, 0.5]), {"w": torch.ones(3)}, label="trial 0")
        >>> cache.load(np.array([0.5, 0.5]))["w"]
        tensor([1., 1., 1.])
    """

    def __init__(self, directory: str | Path, max_bytes: int = 512 * 2**20, evict_on_put: bool = True) -> None:
        self.directory = Path(directory).expanduser()
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise OutputError.writing(self.directory, error) from error
        self.max_bytes = max_bytes
        self.evict_on_put = evict_on_put  # False: only `keep` evicts, so new models wait until they are judged
        self._db = self._open_index()
        columns = [row[1] for row in self._db.execute("PRAGMA table_info(entries)")]
        if "kept" not in columns:  # a cache made before entries could be kept
            with self._db:
                self._db.execute("ALTER TABLE entries ADD COLUMN kept INTEGER NOT NULL DEFAULT 0")

    def _open_index(self) -> sqlite3.Connection:
        """Connect to ``index.sqlite``; an index that is not a readable database is moved aside to
        ``index.sqlite.bad`` (with a warning) and the cache starts afresh: a cache is never worth stopping a run."""
        path = self.directory / "index.sqlite"
        try:
            return _connect(path)
        except sqlite3.OperationalError:  # locked or unwritable, not damaged: never move a healthy index aside
            raise
        except sqlite3.DatabaseError as error:  # garbage or truncated bytes: not a database
            aside = path.with_name(path.name + ".bad")
            warnings.warn(f"model cache index {path} is unreadable ({error}); moved it to {aside.name} and "
                          "starting that cache afresh", SurrogateEMOWarning, stacklevel=3)
            path.replace(aside)
        return _connect(path)

    def __getstate__(self) -> dict:  # a worker process opens its own connection to the index
        return {k: v for k, v in self.__dict__.items() if k != "_db"}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._db = sqlite3.connect(self.directory / "index.sqlite", timeout=60)

    def _path(self, key: str) -> Path:
        return self.directory / f"{key}.pt"

    def _tick(self) -> int:
        return int(self._db.execute("SELECT COALESCE(MAX(used), 0) + 1 FROM entries").fetchone()[0])

    def put(self, genome: np.ndarray, state_dict: dict[str, torch.Tensor], label: str = "") -> None:
        """Store a model under its genome (replacing any older one), then evict down to ``max_bytes``."""
        buffer = io.BytesIO()
        torch.save({name: tensor.detach().cpu() for name, tensor in state_dict.items()}, buffer)
        payload = buffer.getvalue()
        key = genome_key(genome)
        partial = self._path(key).with_suffix(".partial")
        partial.write_bytes(payload)
        partial.replace(self._path(key))  # atomic: a crash never leaves half a file under the final name
        with self._db:
            self._db.execute("INSERT OR REPLACE INTO entries (key, genome, label, sha256, bytes, used) "
                             "VALUES (?, ?, ?, ?, ?, ?)",
                             (key, json.dumps(np.asarray(genome, dtype=float).tolist()), label,
                              hashlib.sha256(payload).hexdigest(), len(payload), self._tick()))
        if self.evict_on_put:
            self.evict()

    def evict(self, protect=()) -> None:
        """Drop the least recently used entries, neither kept nor among the genomes ``protect``, until the cache
        holds at most ``max_bytes``. Deterministic: the order is the ``used`` ticks alone."""
        protected = {genome_key(genome) for genome in protect}
        sizes = self._db.execute("SELECT key, bytes, kept FROM entries ORDER BY used").fetchall()
        # the protected models count for nothing: the bound held before they were put
        total = sum(size for key, size, _ in sizes if key not in protected)
        for key, size, kept in sizes:
            if total <= self.max_bytes:
                break
            if not kept and key not in protected:
                self._drop(key)
                total -= size

    def _drop(self, key: str) -> None:
        with self._db:
            self._db.execute("DELETE FROM entries WHERE key = ?", (key,))
        self._path(key).unlink(missing_ok=True)

    def keep(self, genomes, evict: bool = True) -> None:
        """Exempt the models of ``genomes`` (and only those) from eviction, then, with ``evict``, evict down to
        ``max_bytes`` (the kept ones may exceed it)."""
        keys = [genome_key(genome) for genome in genomes]
        with self._db:
            self._db.execute("UPDATE entries SET kept = 0")
            self._db.executemany("UPDATE entries SET kept = 1 WHERE key = ?", [(key,) for key in keys])
        if evict:
            self.evict()

    def touch(self, labels) -> None:
        """Mark the entries labelled ``labels`` as used, in that order (the last is the most recent). Loading does
        not count as use: whoever owns the cache says what was used, in an order that does not depend on timing,
        so the least recently used entry, and so eviction, is the same in every run of the same trials."""
        first = self._tick()
        with self._db:
            self._db.executemany("UPDATE entries SET used = ? WHERE label = ?",
                                 [(first + i, label) for i, label in enumerate(labels)])

    def entries(self) -> list[tuple[np.ndarray, str]]:
        """(genome, label) of every entry."""
        return [(np.array(json.loads(g)), label) for g, label in self._db.execute("SELECT genome, label FROM entries")]

    def load(self, genome: np.ndarray) -> dict[str, torch.Tensor] | None:
        """The stored model of ``genome``, or None if absent, missing on disk or corrupt (then it is dropped)."""
        key = genome_key(genome)
        row = self._db.execute("SELECT sha256 FROM entries WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        path = self._path(key)
        try:
            payload = path.read_bytes()
            if hashlib.sha256(payload).hexdigest() != row[0]:
                raise ValueError("checksum mismatch")
            state = torch.load(io.BytesIO(payload), weights_only=True)
        except (OSError, ValueError, RuntimeError, EOFError) as error:
            warnings.warn(f"skipping cache entry {path.name}: {error}", SurrogateEMOWarning, stacklevel=2)
            self._drop(key)
            return None
        return state

    def close(self) -> None:
        self._db.close()
