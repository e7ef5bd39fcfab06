"""nox sessions: tests across torch versions, parity against upstream, lint, docs, build.

``nox -l`` lists them. The torch matrix is ``tests(torch-2.4)`` (the oldest supported release),
``tests(torch-2.11)``, ``tests(torch-2.13)`` (the local CPU wheel) and ``tests(torch-2.14)`` (the
newest release this machine's pip can install: its constraint file caps torch at 2.14.1).

The backend is plain ``venv`` + pip on purpose: pip reads this machine's pip configuration (the
local wheel folder with the CPU build of torch 2.13, the on-disk index with torch 2.14.1, the
version cap), which uv ignores, so with uv every torch version would be a multi-GB download.
"""

from __future__ import annotations

import os
import shutil
import tarfile
import zipfile
from pathlib import Path

import nox

nox.options.default_venv_backend = "venv"
nox.options.sessions = ["tests", "lint"]

ROOT = Path(__file__).parent

# oldest supported (pyproject: torch>=2.4), the last torchaudio/torchvision era, the local CPU
# wheel, and the newest release within reach
TORCH_VERSIONS = {
    "torch-2.4": "2.4.1",
    "torch-2.11": "2.11.0",
    "torch-2.13": "2.13.0",
    "torch-2.14": "2.14.1",
}

PARITY_PEERS = [
    "torch==2.11.0",
    "torchaudio==2.11.0",
    "torchvision==0.26.0",
    "timm",
    "transformers",
    "hear21passt",
    "dasheng",  # Dasheng (audio_transformer) parity
    "speechbrain",
]

# Python only: ruff also formats the code blocks of Markdown files, and the docs' examples align
# their comments by hand
LINT_PATHS = ["src", "tests", "docs/hooks", "docs/scripts", "noxfile.py"]

# the version the docs and the wheel check run on: the local CPU wheel, installed from disk
DOCS_TORCH = "torch==2.13.0"


def _env() -> dict[str, str]:
    env = {"AUDIOZOO_REQUIRE_FIXTURES": os.environ.get("AUDIOZOO_REQUIRE_FIXTURES", "0")}
    if "AUDIOZOO_FIXTURES" in os.environ:
        env["AUDIOZOO_FIXTURES"] = os.environ["AUDIOZOO_FIXTURES"]
    return env


@nox.session
@nox.parametrize("torch", list(TORCH_VERSIONS.values()), ids=list(TORCH_VERSIONS))
def tests(session: nox.Session, torch: str) -> None:
    """The test suite (the README's pytest run) on one torch version."""
    # torch first and pinned, so installing the package cannot swap it for another version
    session.install(f"torch=={torch}")
    session.install("-e", ".[test]")
    session.run("python", "-c", "import torch; print('torch', torch.__version__)")
    # one worker per core: the suite is many small models, where one process leaves a core idle
    session.run("pytest", "-p", "no:cacheprovider", "-n", "auto", *session.posargs, env=_env())


@nox.session
def parity(session: nox.Session) -> None:
    """audiozoo vs torchaudio, hear21passt and transformers on identical weights and inputs."""
    session.install(*PARITY_PEERS)
    session.install("-e", ".[test]")
    # every parity test must run: a skip here means a missing peer, which is a failure
    session.run(
        "pytest",
        "tests/parity",
        "-m",
        "parity",
        "-ra",
        "-p",
        "no:cacheprovider",
        *session.posargs,
        env={**_env(), "AUDIOZOO_PARITY_STRICT": "1"},
    )


@nox.session
def lint(session: nox.Session) -> None:
    """ruff check, ruff format --check, mypy on src/."""
    session.install(DOCS_TORCH)
    session.install("-e", ".", "ruff", "mypy")
    session.run("ruff", "check", *LINT_PATHS)
    session.run("ruff", "format", "--check", *LINT_PATHS)
    session.run("mypy", "src")


@nox.session
def docs(session: nox.Session) -> None:
    """The documentation site, strictly: any warning (broken link, bad docstring) fails."""
    session.install(DOCS_TORCH)
    session.install("-e", ".[docs]")
    session.run(
        "mkdocs",
        "build",
        "--strict",
        "--site-dir",
        "site",
        *session.posargs,
        env={"NO_MKDOCS_2_WARNING": "1"},
    )


@nox.session
def build(session: nox.Session) -> None:
    """sdist + wheel, twine check, wheel contents, then the wheel in a clean venv."""
    session.install("build", "twine")
    dist = ROOT / "dist"
    shutil.rmtree(dist, ignore_errors=True)
    session.run("python", "-m", "build", "--outdir", str(dist))
    session.run("twine", "check", "--strict", *map(str, sorted(dist.iterdir())))
    _check_dist(session, dist)

    # a fresh venv that has never seen the source tree: torch first, then only the wheel
    (wheel,) = dist.glob("*.whl")
    venv = Path(session.create_tmp()).resolve() / "wheel-venv"
    shutil.rmtree(venv, ignore_errors=True)
    session.run("python", "-m", "venv", str(venv))
    py, cli = venv / "bin" / "python", venv / "bin" / "audiozoo"
    session.run(str(py), "-m", "pip", "install", "-q", DOCS_TORCH, external=True)
    session.run(str(py), "-m", "pip", "install", "-q", str(wheel), external=True)
    tmp = session.create_tmp()  # run outside the repository so src/ cannot shadow the wheel
    with session.chdir(tmp):
        session.run(
            str(py),
            "-c",
            "import audiozoo, pathlib; f = pathlib.Path(audiozoo.__file__); "
            "assert 'site-packages' in str(f), f; assert (f.parent / 'py.typed').is_file(); "
            "print('audiozoo', audiozoo.__version__, 'from', f.parent)",
            external=True,
        )
        session.run(str(cli), "list", external=True)


@nox.session
def bench(session: nox.Session) -> None:
    """The benchmark table (``python -m benchmarks``) against the upstream peers of ``parity``."""
    session.install(*PARITY_PEERS)
    session.install("-e", ".")
    session.run("python", "-m", "benchmarks", *session.posargs, env=_env())


def _check_dist(session: nox.Session, dist: Path) -> None:
    """The wheel holds the package with its py.typed marker, and neither holds tests or data."""
    (wheel,) = dist.glob("*.whl")
    (sdist,) = dist.glob("*.tar.gz")
    wheel_names = zipfile.ZipFile(wheel).namelist()
    with tarfile.open(sdist) as tar:
        sdist_names = [n.split("/", 1)[1] for n in tar.getnames() if "/" in n]
    problems = []
    if "audiozoo/py.typed" not in wheel_names:
        problems.append("the wheel lacks audiozoo/py.typed")
    if "audiozoo/cli/__init__.py" not in wheel_names:
        problems.append("the wheel lacks the audiozoo.cli package")
    for kind, names in (("wheel", wheel_names), ("sdist", sdist_names)):
        for name in names:
            parts = name.split("/")
            if {"tests", "fixtures", "__pycache__", ".nox"} & set(parts) or name.endswith(
                (".pt", ".pth", ".safetensors", ".wav", ".npz", ".pyc")
            ):
                problems.append(f"the {kind} contains {name}")
    if problems:
        session.error("; ".join(problems))
    session.log(f"{wheel.name}: {len(wheel_names)} files; {sdist.name}: {len(sdist_names)} files")
