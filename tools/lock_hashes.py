"""Add PyPI's sha256 hashes to the pinned requirements, so that installs can use `pip --require-hashes`.

    python tools/lock_hashes.py requirements-lock.txt     # rewrites the file in place (atomically)

Every `name==version` line gets the hashes PyPI's simple index publishes for that release's files: the
source archive and the wheels for CPython 3.11 or any Python, on every platform (files built for other
Python versions are left out). Nothing is invented: a release PyPI does not list makes the tool fail.
"""
from __future__ import annotations

import json
import os
import re
import sys
import tempfile
import urllib.request
from pathlib import Path

INDEX = "https://pypi.org/simple/{}/"
PIN = re.compile(r"^([A-Za-z0-9_.\-]+)==([^\s;\\]+)")
# wheels built for one other CPython ABI (cp312-cp312, ...) or for PyPy; abi3 and py3-none wheels stay
OTHER_PYTHONS = re.compile(r"-cp3(?!11-)\d+-cp3\d+|-pp\d+-|-cp2\d-|-py2-")


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def release_hashes(name: str, version: str) -> list:
    "sha256 of every file of `name==version` that a CPython 3.11 install could pick."
    request = urllib.request.Request(INDEX.format(normalise(name)), headers={"Accept": "application/vnd.pypi.simple.v1+json"})
    files = json.load(urllib.request.urlopen(request, timeout=60))["files"]
    name_pattern = "[-_.]".join(re.escape(part) for part in normalise(name).split("-"))
    stem = re.compile(rf"^{name_pattern}-{re.escape(version)}(-|\.tar\.gz$|\.zip$)", re.I)
    hashes = sorted({f["hashes"]["sha256"] for f in files
                     if stem.match(f["filename"]) and "sha256" in f["hashes"] and not OTHER_PYTHONS.search(f["filename"])})
    if not hashes: raise SystemExit(f"PyPI lists no files for {name}=={version}: fix the pin before locking.")
    return hashes


def with_hashes(lines: list) -> list:
    out = []
    for line in lines:
        pin = PIN.match(line.strip())
        if not pin:
            if not line.strip().startswith("--hash") and not line.rstrip().endswith("\\"): out.append(line.rstrip())
            continue
        name, version = pin.groups()
        out.append(f"{name}=={version} \\")
        hashes = release_hashes(name, version)
        out += [f"    --hash=sha256:{h}" + (" \\" if i < len(hashes) - 1 else "") for i, h in enumerate(hashes)]
    return out


def main(path: str) -> None:
    path = Path(path)
    text = "\n".join(with_hashes(path.read_text().splitlines())) + "\n"
    handle, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(handle, "w") as f: f.write(text)
    os.replace(tmp, path)
    print(f"{path}: {sum(1 for l in text.splitlines() if PIN.match(l))} pins, {text.count('--hash=')} hashes")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "requirements-lock.txt")
