"""The evidence bundle: one directory with a manifest of SHA-256 per file; its hash goes into the minutes."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

from extract.package import sha256_file
from transform.errors import SignOffError

BUNDLE_MANIFEST = "manifest.json"


def build_bundle(root: Path, files: dict[str, Path], data: dict[str, Any]) -> str:
    """Copy ``files`` and write ``data`` (name → JSON-able) into ``root``; return the bundle hash."""
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    for name, src in files.items():
        shutil.copyfile(src, root / name)
    for name, obj in data.items():
        (root / name).write_text(json.dumps(obj, ensure_ascii=False, indent=1, sort_keys=True, default=str),
                                 encoding="utf-8")
    entries = {p.name: sha256_file(p) for p in sorted(root.iterdir()) if p.name != BUNDLE_MANIFEST}
    text = json.dumps({"files": entries}, indent=1, sort_keys=True)
    (root / BUNDLE_MANIFEST).write_text(text, encoding="utf-8")
    return hashlib.sha256(text.encode()).hexdigest()


def verify_bundle(root: Path) -> str:
    """Recompute every file's hash; raise naming the first altered/missing/extra file; return the bundle hash."""
    mp = root / BUNDLE_MANIFEST
    if not mp.exists():
        raise SignOffError(f"evidence bundle has no {BUNDLE_MANIFEST}", table=str(root))
    text = mp.read_text(encoding="utf-8")
    entries: dict[str, str] = json.loads(text)["files"]
    for name, digest in entries.items():
        p = root / name
        if not p.exists():
            raise SignOffError(f"evidence file missing: {name}", table=str(p))
        if sha256_file(p) != digest:
            raise SignOffError(f"evidence file altered: {name}", table=str(p))
    extra = {p.name for p in root.iterdir()} - set(entries) - {BUNDLE_MANIFEST}
    if extra:
        raise SignOffError(f"evidence bundle has files not in its manifest: {sorted(extra)}", table=str(root))
    return hashlib.sha256(text.encode()).hexdigest()
