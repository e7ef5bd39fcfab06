"""nox sessions: tests across torch versions, parity against upstream, lint, docs, build."""

from __future__ import annotations

import os

import nox

nox.options.default_venv_backend = "venv"
nox.options.sessions = ["tests", "lint"]

PARITY_PEERS = [
    "torch==2.11.0",
    "torchaudio==2.11.0",
    "torchvision==0.26.0",
    "timm",
    "transformers",
    "hear21passt",
]


def _env() -> dict[str, str]:
    env = {"AUDIOZOO_REQUIRE_FIXTURES": os.environ.get("AUDIOZOO_REQUIRE_FIXTURES", "0")}
    if "AUDIOZOO_FIXTURES" in os.environ:
        env["AUDIOZOO_FIXTURES"] = os.environ["AUDIOZOO_FIXTURES"]
    return env


@nox.session
def parity(session: nox.Session) -> None:
    """audiozoo vs torchaudio, hear21passt and transformers on identical weights and inputs."""
    session.install(*PARITY_PEERS)
    session.install("-e", ".[test]")
    # every parity test must run: a skip here means a missing peer, which is a failure
    session.run(
        "pytest", "tests/parity", "-m", "parity", "-ra", "-p", "no:cacheprovider",
        "-W", "error::pytest.PytestUnhandledCoroutineWarning", *session.posargs,
        env={**_env(), "AUDIOZOO_PARITY_STRICT": "1"},
    )
