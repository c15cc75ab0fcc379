"""Chain of custody at every hand-off: a consumer re-verifies the files it is about to read against the hashes
their producer recorded, at the moment it reads them.

::

    step 2 ── package manifest (every file's SHA-256) ──▶ control store: package_manifest_sha256
    step 3 ── received copy == sent manifest == recorded hash
    step 4 ── received files re-hashed before they are restored
    step 5 ── snapshot manifest (every file's SHA-256)   ──▶ control store: snapshot_sha256 (and the minutes)
    steps 6, 7, 8, ``ecm resume`` ── snapshot files re-hashed before they are read

A difference stops the step before it writes anything, naming the file.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from extract.errors import PackageIntegrityError
from extract.package import MANIFEST, PackageManifest, sha256_file


def manifest_sha256(root: Path, name: str = MANIFEST) -> str:
    """SHA-256 of a manifest file as it is on disk (what step 2 / step 5 recorded)."""
    p = root / name
    if not p.exists():
        raise PackageIntegrityError(f"{p} is missing", table=str(p), hint="the files were moved or deleted: "
                                    "restore them from the run directory's backup or re-run the producing step")
    return hashlib.sha256(p.read_bytes()).hexdigest()


def _refuse(what: str, path: str, hint: str) -> PackageIntegrityError:
    return PackageIntegrityError(what, table=path, hint=hint)


def verify_package_custody(root: Path, recorded_manifest_sha256: str | None, when: str) -> PackageManifest:
    """The package at ``root`` is the one step 2 wrote: its manifest hashes to what step 2 recorded, and every
    file it lists (data, schema, reports, native backups) hashes to its entry. Called at step 3 and again at
    step 4, right before the files are restored."""
    if recorded_manifest_sha256 is not None:
        got = manifest_sha256(root)
        if got != recorded_manifest_sha256:
            raise _refuse(f"{when}: the package manifest is not the one step 2 wrote (recorded "
                          f"{recorded_manifest_sha256[:12]}…, found {got[:12]}…)", str(root / MANIFEST),
                          "the package was altered after step 2; hand it over again from the branch (step 3) "
                          "or redo step 2")
    man = PackageManifest.read(root)
    entries: list[tuple[str, str]] = [(f.path, f.sha256) for f in man.files]
    entries += [(sf["path"], sf["sha256"]) for sf in man.schema_files.values()]
    entries += list(man.attachments.items())
    entries += [(rel, str(nb["sha256"])) for rel, nb in man.native_backups.items()]
    for rel, digest in entries:
        p = root / rel
        if not p.exists():
            raise _refuse(f"{when}: package file missing: {rel}", rel, "hand the package over again from the branch")
        got = sha256_file(p)
        if got != digest:
            raise _refuse(f"{when}: package file altered: {rel} (manifest {digest[:12]}…, found {got[:12]}…)", rel,
                          "the copy was changed after it was written; hand the package over again from the branch")
    return man


def verify_snapshot_custody(root: Path, recorded_sha256: str | None, when: str) -> dict[str, object]:
    """The converted snapshot at ``root`` is the one step 5 wrote (and the minutes vouch for): its manifest hashes
    to the recorded snapshot SHA-256 and every file it lists hashes to its entry."""
    man_text_sha = manifest_sha256(root, "manifest.json")
    if recorded_sha256 is not None and man_text_sha != recorded_sha256:
        raise _refuse(f"{when}: the snapshot manifest is not the one step 5 wrote (recorded {recorded_sha256[:12]}…, "
                      f"found {man_text_sha[:12]}…)", str(root / "manifest.json"),
                      "the snapshot was altered after step 5: do not load it; re-run from step 5")
    man = json.loads((root / "manifest.json").read_text(encoding="utf-8"))
    entries = [(v["file"], v["sha256"]) for v in man.get("tables", {}).values()]
    entries += [(name, v["sha256"]) for name, v in man.get("files", {}).items()]
    for rel, digest in entries:
        p = root / rel
        if not p.exists():
            raise _refuse(f"{when}: snapshot file missing: {rel}", str(p), "re-run from step 5")
        got = sha256_file(p)
        if got != digest:
            raise _refuse(f"{when}: snapshot file altered: {rel} (manifest {digest[:12]}…, found {got[:12]}…)", str(p),
                          "the snapshot was changed after step 5 (and after the minutes were signed): do not load "
                          "it; re-run from step 5")
    man["snapshot_sha256"] = man_text_sha
    return man
