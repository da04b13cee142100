"""Re-fetch the dashboard's vendored JavaScript from the npm registry and check it.

``static/vendor.json`` pins each library: its npm name and version, the tarball's
``integrity`` (the registry's SHA-512), and for each file copied out of the tarball its
path there, its path under ``static/vendor/`` and its SHA-256. Nothing is fetched at run
time; the dashboard works offline.

::

    python -m tierq.dashboard.vendor check     # hashes of the files on disk (offline)
    python -m tierq.dashboard.vendor fetch     # npm pack each pin, verify, write the files
    python -m tierq.dashboard.vendor fetch --update   # after changing a version: record
                                                      # the new integrity and hashes

``fetch`` uses ``npm pack`` (the ordinary registry client, with whatever registry and proxy
npm is configured for) and reads only the listed members out of the tarball, so a tarball
cannot write outside ``static/vendor/``.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["MANIFEST", "VENDOR_DIR", "VendorError", "check", "fetch"]

STATIC = Path(__file__).resolve().parent / "static"
VENDOR_DIR = STATIC / "vendor"
MANIFEST = STATIC / "vendor.json"


class VendorError(Exception):
    """A vendored file is missing or differs from its pin."""


def load(manifest: Path = MANIFEST) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(manifest.read_text())
    return data


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _target(package: dict[str, Any], entry: dict[str, Any], root: Path) -> Path:
    path: Path = (root / str(package["dir"]) / str(entry["to"])).resolve()
    if root.resolve() not in path.parents:
        raise VendorError(f"{package['name']}: {entry['to']!r} leaves the vendor folder")
    return path


def check(manifest: Path = MANIFEST, root: Path = VENDOR_DIR) -> list[str]:
    """Every pinned file is on disk with its pinned SHA-256; returns the files checked."""
    checked: list[str] = []
    for package in load(manifest)["packages"]:
        for entry in package["files"]:
            path = _target(package, entry, root)
            if not path.is_file():
                raise VendorError(f"{package['name']}@{package['version']}: {path} is missing")
            digest = _sha256(path.read_bytes())
            if digest != entry["sha256"]:
                raise VendorError(
                    f"{package['name']}@{package['version']}: {path} has sha256 {digest}, "
                    f"pinned {entry['sha256']}"
                )
            checked.append(str(path.relative_to(root)))
    return checked


def _npm_pack(spec: str, into: Path) -> tuple[Path, str]:
    """``npm pack spec`` into ``into``; returns the tarball and the registry's integrity."""
    out = subprocess.run(
        ["npm", "pack", spec, "--json", "--pack-destination", str(into)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    info = json.loads(out)[0]
    return into / info["filename"], info["integrity"]


def _integrity(data: bytes) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()


def fetch(manifest: Path = MANIFEST, root: Path = VENDOR_DIR, *, update: bool = False) -> None:
    """Fetch each pinned package, verify it, and write its files under ``root``.

    With ``update``, new integrity and hashes are recorded instead of checked (use it after
    changing a version in the manifest, and review the diff).
    """
    data = load(manifest)
    with tempfile.TemporaryDirectory(prefix="tierq-vendor-") as tmp:
        for package in data["packages"]:
            spec = f"{package['name']}@{package['version']}"
            tarball, reported = _npm_pack(spec, Path(tmp))
            raw = tarball.read_bytes()
            actual = _integrity(raw)
            if actual != reported:
                raise VendorError(f"{spec}: tarball does not match the registry's integrity")
            if update:
                package["integrity"] = actual
            elif actual != package["integrity"]:
                raise VendorError(f"{spec}: integrity {actual} differs from the pin")
            with tarfile.open(tarball, "r:gz") as tar:
                for entry in package["files"]:
                    member = tar.getmember(f"package/{entry['from']}")
                    handle = tar.extractfile(member) if member.isfile() else None
                    if handle is None:
                        raise VendorError(f"{spec}: {entry['from']} is not a file")
                    content = handle.read()
                    digest = _sha256(content)
                    if update:
                        entry["sha256"] = digest
                    elif digest != entry["sha256"]:
                        raise VendorError(f"{spec}: {entry['from']} has sha256 {digest}")
                    path = _target(package, entry, root)
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_bytes(content)
            print(f"{spec}: {len(package['files'])} file(s) written")
    if update:
        manifest.write_text(json.dumps(data, indent=2) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tierq.dashboard.vendor")
    parser.add_argument("command", choices=["check", "fetch"])
    parser.add_argument("--update", action="store_true", help="record new pins (fetch)")
    args = parser.parse_args(argv)
    try:
        if args.command == "fetch":
            fetch(update=args.update)
        for name in check():
            print(f"ok  {name}")
    except (VendorError, subprocess.CalledProcessError, KeyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
