"""Build the Rasa 3.6 environment (Python 3.10) and train its model, both cached outside the clone.

    python -m chatbot.env ensure   # build the env once, train when data/config changed, print paths
    python -m chatbot.env paths    # print the paths as JSON, building nothing

Rasa 3.6 needs Python 3.8-3.10 and pins SQLAlchemy 1.4 and pydantic 1, so it cannot share the
app's 3.11 virtualenv. The env is keyed by a hash of chatbot/rasa/requirements.txt and the
interpreter version, the model by a hash of what training reads; both are built under a temporary
name and renamed when complete, so an interrupted build is never taken as done.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import glob
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

RASA_DIR = Path(__file__).resolve().parent / "rasa"
REPO_ROOT = RASA_DIR.parent.parent
REQUIREMENTS = RASA_DIR / "requirements.txt"
# What `rasa train` reads: changing any of it retrains.
TRAINING_INPUTS = ("config.yml", "domain.yml", "data")
SUPPORTED = ((3, 8), (3, 9), (3, 10))

INSTALL_HELP = (
    "Rasa 3.6 needs Python 3.8, 3.9 or 3.10 and none was found. Install one, e.g. "
    "`pyenv install 3.10.13`, `uv python install 3.10` or `apt-get install python3.10 "
    "python3.10-venv`, and/or point CC_RASA_PYTHON at it; or run the bot in containers with "
    "`docker compose up rasa rasa-actions` (see compose.yaml)."
)


class EnvError(RuntimeError):
    """The Rasa environment or model could not be built."""


def cache_dir() -> Path:
    """${CC_CACHE_DIR:-${XDG_CACHE_HOME:-~/.cache}/contact-center}."""
    explicit = os.environ.get("CC_CACHE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg).expanduser() / "contact-center"


def _version_of(python: str) -> tuple[int, int, int] | None:
    try:
        out = subprocess.run(
            [python, "-c", "import sys, venv; print(*sys.version_info[:3])"],
            capture_output=True, text=True, timeout=20, check=True,
        ).stdout.split()
        return int(out[0]), int(out[1]), int(out[2])
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return None


def find_python() -> tuple[Path, str] | None:
    """A Python 3.8-3.10 interpreter with venv, and its version ("3.10.13"), or None."""
    candidates: list[str] = []
    if os.environ.get("CC_RASA_PYTHON"):
        candidates.append(os.environ["CC_RASA_PYTHON"])
    for name in ("python3.10", "python3.9", "python3.8"):
        found = shutil.which(name)
        if found:
            candidates.append(found)
    pyenv_root = os.environ.get("PYENV_ROOT", str(Path.home() / ".pyenv"))
    for minor in ("10", "9", "8"):
        candidates += sorted(glob.glob(f"{pyenv_root}/versions/3.{minor}.*/bin/python3.{minor}"), reverse=True)
        candidates += sorted(glob.glob(f"/usr/bin/python3.{minor}") + glob.glob(f"/usr/local/bin/python3.{minor}"))
    for candidate in candidates:
        version = _version_of(candidate)
        if version and version[:2] in SUPPORTED:
            # resolve pyenv shims to the real interpreter so the env does not depend on the shim
            real = subprocess.run(
                [candidate, "-c", "import sys; print(sys.executable)"],
                capture_output=True, text=True, timeout=20,
            ).stdout.strip()
            return Path(real or candidate), ".".join(map(str, version))
        if os.environ.get("CC_RASA_PYTHON") == candidate:
            raise EnvError(f"CC_RASA_PYTHON={candidate} is not a working Python 3.8-3.10. {INSTALL_HELP}")
    return None


def _digest(*parts: bytes) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(len(part).to_bytes(8, "big"))
        h.update(part)
    return h.hexdigest()[:16]


def env_key(python_version: str) -> str:
    """Hash of requirements.txt and the interpreter version."""
    return _digest(REQUIREMENTS.read_bytes(), python_version.encode())


def model_key() -> str:
    """Hash of everything `rasa train` reads, plus the pinned libraries that train it."""
    parts: list[bytes] = [REQUIREMENTS.read_bytes()]
    for name in TRAINING_INPUTS:
        path = RASA_DIR / name
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for file in files:
            parts += [str(file.relative_to(RASA_DIR)).encode(), file.read_bytes()]
    return _digest(*parts)


@dataclass(frozen=True)
class RasaPaths:
    """Where the Rasa env and model are (or would be) cached."""

    cache_dir: Path
    python: Path | None
    python_version: str | None
    env_dir: Path | None
    model_path: Path

    @property
    def env_ready(self) -> bool:
        return self.env_dir is not None and (self.env_dir / "bin" / "python").exists()

    @property
    def model_ready(self) -> bool:
        return self.model_path.is_file()

    def as_json(self) -> dict[str, object]:
        return {
            "cache_dir": str(self.cache_dir),
            "python": str(self.python) if self.python else None,
            "python_version": self.python_version,
            "env_dir": str(self.env_dir) if self.env_dir else None,
            "env_ready": self.env_ready,
            "model_path": str(self.model_path),
            "model_ready": self.model_ready,
            "rasa_dir": str(RASA_DIR),
        }


def paths() -> RasaPaths:
    """Compute the cache paths without building anything."""
    root = cache_dir()
    found = find_python()
    env_dir = root / f"rasa-env-{env_key(found[1])}" if found else None
    return RasaPaths(
        cache_dir=root,
        python=found[0] if found else None,
        python_version=found[1] if found else None,
        env_dir=env_dir,
        model_path=root / "rasa-models" / f"{model_key()}.tar.gz",
    )


def rasa_environ(extra: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for Rasa child processes: quiet TensorFlow, no telemetry (loopback only)."""
    env = dict(os.environ)
    env.update(
        RASA_TELEMETRY_ENABLED="false",
        TF_CPP_MIN_LOG_LEVEL="2",
        SQLALCHEMY_SILENCE_UBER_WARNING="1",
        PYTHONWARNINGS="ignore",
        # Rasa's per-component training cache, which defaults to .rasa/ in the clone
        RASA_CACHE_DIRECTORY=str(cache_dir() / "rasa-train-cache"),
        # the action server imports chatbot.language from this repository
        PYTHONPATH=os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
    )
    env.pop("VIRTUAL_ENV", None)
    if extra:
        env.update(extra)
    return env


@contextlib.contextmanager
def _lock(path: Path) -> Iterator[None]:
    """An exclusive file lock so that two `ensure` runs do not build the same thing twice."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _run_with_progress(cmd: list[str], *, label: str, log_path: Path, cwd: Path | None = None,
                       out: TextIO = sys.stderr) -> None:
    """Run cmd, logging everything to log_path and showing elapsed time and the latest line."""
    started = time.monotonic()
    tty = out.isatty()
    last_print = 0.0
    with log_path.open("w") as log, subprocess.Popen(
        cmd, cwd=cwd, env=rasa_environ(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, bufsize=1,
    ) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            log.write(line)
            now = time.monotonic()
            line = line.strip()
            if line and (tty or now - last_print >= 5):
                msg = f"[{label}] {now - started:5.0f}s  {line[:100]}"
                out.write(f"\r\x1b[2K{msg}" if tty else msg + "\n")
                out.flush()
                last_print = now
        code = proc.wait()
    if tty:
        out.write("\n")
    if code != 0:
        tail = "".join(log_path.read_text(errors="replace").splitlines(keepends=True)[-30:])
        raise EnvError(f"{label} failed (exit {code}); full log: {log_path}\n{tail}")
    out.write(f"[{label}] done in {time.monotonic() - started:.0f}s\n")


def ensure_env(p: RasaPaths | None = None, *, out: TextIO = sys.stderr) -> Path:
    """Build the Rasa virtualenv once; return its directory."""
    p = p or paths()
    if p.python is None or p.env_dir is None:
        raise EnvError(INSTALL_HELP)
    final = p.env_dir
    if p.env_ready:
        return final
    with _lock(p.cache_dir / f".{final.name}.lock"):
        if p.env_ready:  # built by another process while we waited
            return final
        building = final.with_name(f"{final.name}.building-{os.getpid()}")
        shutil.rmtree(building, ignore_errors=True)
        out.write(f"[rasa-env] building {final} with Python {p.python_version} (about 2 minutes, 2.7 GB)\n")
        log = p.cache_dir / f"{final.name}.log"
        try:
            subprocess.run([str(p.python), "-m", "venv", str(building)], check=True)
            py = str(building / "bin" / "python")
            _run_with_progress([py, "-m", "pip", "install", "--disable-pip-version-check",
                                "pip==24.0", "wheel"], label="rasa-env pip", log_path=log)
            # Everything is invoked as `<env>/bin/python -m ...`, never through console scripts
            # whose shebangs would still name the temporary directory after the rename.
            _run_with_progress([py, "-m", "pip", "install", "--disable-pip-version-check",
                                "--no-input", "-r", str(REQUIREMENTS)],
                               label="rasa-env install", log_path=log)
            (building / ".complete").write_text(json.dumps({"requirements": str(REQUIREMENTS)}))
            shutil.rmtree(final, ignore_errors=True)  # an unmarked leftover is never reused
            building.rename(final)
        except BaseException:
            shutil.rmtree(building, ignore_errors=True)
            raise
    return final


def ensure_model(env_dir: Path, p: RasaPaths | None = None, *, out: TextIO = sys.stderr) -> Path:
    """Train the model unless one for the current config, domain and data is cached."""
    p = p or paths()
    final = p.model_path
    if final.is_file():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    with _lock(final.parent / f".{final.name}.lock"):
        if final.is_file():
            return final
        building = final.parent / f".train-{os.getpid()}"
        shutil.rmtree(building, ignore_errors=True)
        out.write(f"[rasa-train] training {final.name} (data or config changed)\n")
        try:
            _run_with_progress(
                [str(env_dir / "bin" / "python"), "-m", "rasa", "train", "--config", "config.yml",
                 "--domain", "domain.yml", "--data", "data", "--out", str(building),
                 "--fixed-model-name", "model"],
                label="rasa-train", log_path=final.parent / f"{final.stem}.train.log", cwd=RASA_DIR,
            )
            trained = building / "model.tar.gz"
            if not trained.is_file():
                raise EnvError(f"rasa train produced no model in {building}")
            trained.rename(final)
        finally:
            shutil.rmtree(building, ignore_errors=True)
    return final


def ensure(*, out: TextIO = sys.stderr) -> RasaPaths:
    """Build the env and train the model as needed; return the paths."""
    p = paths()
    env_dir = ensure_env(p, out=out)
    ensure_model(env_dir, p, out=out)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chatbot.env", description=__doc__.split("\n")[0])
    parser.add_argument("command", choices=["ensure", "paths"])
    args = parser.parse_args(argv)
    try:
        if args.command == "paths":
            print(json.dumps(paths().as_json(), indent=2))
            return 0
        p = ensure()
    except EnvError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"env:   {p.env_dir}")
    print(f"model: {p.model_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
