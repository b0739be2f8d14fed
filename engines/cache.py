"""A folder of built artefacts (ONNX models, TensorRT programs), one validated entry per key.

    cache = ArtefactCache(Path("~/.cache/realtime-unmask").expanduser(), log=print)
    key = CacheKey("segmenter-onnx-cpu", {"checkpoint": digest, "precision": "fp32", ...})
    session, entry, hit = cache.get_or_build(key, build=export_into, load=open_session)

Each entry is a folder ``<name>-<sha256 prefix>/`` holding the artefact files and a
``manifest.json`` with the key, its fields and the sha256 of every file. An entry is loaded only
if its manifest matches the key exactly and every file hashes as recorded; anything else (a
stale, foreign, truncated or edited entry, or one whose load raises ArtefactError) is rebuilt,
never loaded. Entries are built in a temporary folder and renamed into place, so a crash never
leaves a half-written entry under a valid name.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, TypeVar

CACHE_FORMAT = 1
MANIFEST = "manifest.json"
T = TypeVar("T")

# Distribution names under which each package may be installed.
_DISTRIBUTIONS = {
    "torch": ("torch",),
    "torch_tensorrt": ("torch-tensorrt", "torch_tensorrt"),
    "tensorrt": ("tensorrt", "tensorrt-cu13", "tensorrt-cu12", "tensorrt-cu11"),
    "onnxruntime": ("onnxruntime", "onnxruntime-gpu"),
    "onnx": ("onnx",),
}


class ArtefactError(Exception):
    """A cached artefact exists but cannot be used; the cache rebuilds it."""


@dataclass(frozen=True)
class CacheKey:
    """What an artefact was built from and for; any change gives a different entry."""

    name: str
    """Readable prefix of the entry folder, e.g. "generator-onnx-cpu"."""
    fields: dict[str, str] = field(default_factory=dict)
    """Checkpoint digest, kind, precision, shapes, device, package versions... as strings."""

    @property
    def digest(self) -> str:
        """sha256 of the fields and the cache format version."""
        text = json.dumps({"cache_format": CACHE_FORMAT, "name": self.name, **self.fields},
                          sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()

    @property
    def dirname(self) -> str:
        """The entry's folder name."""
        return f"{self.name}-{self.digest[:20]}"


def package_versions(names: Iterable[str]) -> dict[str, str]:
    """Installed versions of the named packages (absent ones are left out), without importing."""
    versions = {}
    for name in names:
        for dist in _DISTRIBUTIONS.get(name, (name,)):
            try:
                versions[f"version:{name}"] = metadata.version(dist)
                break
            except metadata.PackageNotFoundError:
                continue
    return versions


def file_sha256(path: Path) -> str:
    """sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class ArtefactCache:
    """Validated, atomically written cache entries under one root folder."""

    def __init__(self, root: Path, log: Callable[[str], None] = print) -> None:
        self.root = Path(root)
        self.log = log

    def path_for(self, key: CacheKey) -> Path:
        """Where the entry for ``key`` lives (whether or not it exists)."""
        return self.root / key.dirname

    def lookup(self, key: CacheKey) -> Path | None:
        """The entry folder if it exists and is valid for ``key``; None otherwise (logged)."""
        entry = self.path_for(key)
        if not entry.exists():
            return None
        problem = self._problem(entry, key)
        if problem is not None:
            self.log(f"cache: {entry.name} is not usable ({problem}); rebuilding it")
            return None
        return entry

    def manifest(self, entry: Path) -> dict[str, Any]:
        """The parsed manifest of a valid entry."""
        return json.loads((entry / MANIFEST).read_text())

    def build(self, key: CacheKey, build: Callable[[Path], dict[str, Any]]) -> Path:
        """Run ``build(folder)`` in a fresh temporary folder and install it as ``key``'s entry.

        ``build`` writes the artefact files and returns JSON-serialisable info (e.g. parity
        numbers) that is kept in the manifest.
        """
        self.root.mkdir(parents=True, exist_ok=True)
        replacing = _identity(self.path_for(key))  # a stale entry, or one that did not load
        tmp = Path(tempfile.mkdtemp(prefix=f".build-{key.name}-", dir=self.root))
        try:
            info = build(tmp)
            files = {p.name: file_sha256(p) for p in sorted(tmp.iterdir()) if p.is_file()}
            if not files:
                raise ArtefactError(f"building {key.name} produced no files")
            manifest = {"cache_format": CACHE_FORMAT, "name": key.name, "key": key.digest,
                        "fields": key.fields, "files": files, "info": info,
                        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
            (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True))
            return self._install(tmp, key, replacing)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)

    def get_or_build(
        self,
        key: CacheKey,
        build: Callable[[Path], dict[str, Any]],
        load: Callable[[Path], T],
    ) -> tuple[T, Path, bool]:
        """(loaded artefact, entry folder, whether it came from the cache)."""
        entry = self.lookup(key)
        if entry is not None:
            try:
                return load(entry), entry, True
            except ArtefactError as err:
                self.log(f"cache: {entry.name} failed to load ({err}); rebuilding it")
        entry = self.build(key, build)
        return load(entry), entry, False

    def _problem(self, entry: Path, key: CacheKey) -> str | None:
        try:
            manifest = json.loads((entry / MANIFEST).read_text())
        except (OSError, ValueError) as err:
            return f"unreadable manifest: {err}"
        if not isinstance(manifest, dict) or manifest.get("cache_format") != CACHE_FORMAT:
            return "manifest from another cache format"
        if manifest.get("key") != key.digest or manifest.get("fields") != key.fields:
            return "manifest describes a different artefact"
        files = manifest.get("files")
        if not isinstance(files, dict) or not files:
            return "manifest lists no files"
        for name, expected in files.items():
            path = entry / name
            if not path.is_file():
                return f"{name} is missing"
            if file_sha256(path) != expected:
                return f"{name} does not match its recorded sha256"
        return None

    def _install(self, tmp: Path, key: CacheKey, replacing: tuple[int, int] | None) -> Path:
        entry = self.path_for(key)
        if _identity(entry) not in (None, replacing) and self._problem(entry, key) is None:
            # Another process (a batch's other worker) installed it while this one built:
            # it may be loading it now, so it stays, and this copy is dropped.
            return entry
        if entry.exists():  # a stale or corrupt entry: move it aside, then drop it
            stale = self.root / f".stale-{entry.name}-{os.getpid()}-{time.monotonic_ns()}"
            os.replace(entry, stale)
            shutil.rmtree(stale, ignore_errors=True)
        try:
            os.replace(tmp, entry)
        except OSError:
            # Another process installed the same key between our check and rename.
            if self._problem(entry, key) is None:
                return entry
            raise
        return entry


def _identity(folder: Path) -> tuple[int, int] | None:
    """Which folder is at this path now (inode, mtime), or None if there is none."""
    try:
        stat = folder.stat()
    except FileNotFoundError:
        return None
    return stat.st_ino, stat.st_mtime_ns
