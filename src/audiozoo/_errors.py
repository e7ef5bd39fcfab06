"""The audiozoo exception hierarchy.

Every error audiozoo raises on purpose derives from :class:`AudiozooError`, and also from the
built-in exception a caller would expect (``ValueError`` for bad values, ``TypeError`` for bad
types, ...), so ``except ValueError`` keeps working::

    AudiozooError
    ├── UnknownNameError (KeyError)        unknown model / frontend / backbone / head name
    ├── RegistryError (ValueError)         duplicate registration, invalid config
    ├── ConfigurationError (ValueError)    an unusable setting (environment variable, cache folder)
    ├── InvalidAudioError (ValueError)     wrong rank, non-finite, too short, wrong sample rate
    ├── AudioTypeError (TypeError)         input that is not audio (wrong dtype or type)
    ├── CheckpointError (RuntimeError)     a checkpoint that does not fit the architecture
    └── PretrainedUnavailableError (RuntimeError)  weights that cannot be found or downloaded
"""

from __future__ import annotations

__all__ = [
    "AudioTypeError",
    "AudiozooError",
    "CheckpointError",
    "ConfigurationError",
    "InvalidAudioError",
    "PretrainedUnavailableError",
    "RegistryError",
    "UnknownNameError",
]


class AudiozooError(Exception):
    """Base class of all errors raised by audiozoo."""


class UnknownNameError(AudiozooError, KeyError):
    """A name that no registry knows."""

    def __str__(self) -> str:  # KeyError would print the message with quotes
        return str(self.args[0]) if self.args else ""


class RegistryError(AudiozooError, ValueError):
    """A registration or configuration that the registry refuses."""


class ConfigurationError(AudiozooError, ValueError):
    """A setting audiozoo cannot use: an environment variable (``AUDIOZOO_DOWNLOAD_RETRIES``,
    ``AUDIOZOO_URL_REWRITE``, ...) or a cache folder that is not a writable folder. The message
    names the setting and what it must be."""


class InvalidAudioError(AudiozooError, ValueError):
    """Audio with a valid type but an unusable value (shape, length, NaN, sample rate)."""


class AudioTypeError(AudiozooError, TypeError):
    """Input of a type or dtype that audiozoo does not read as audio."""


class CheckpointError(AudiozooError, RuntimeError):
    """A checkpoint whose keys or shapes do not fit the model."""


class PretrainedUnavailableError(AudiozooError, RuntimeError):
    """Pretrained weights that cannot be found, downloaded or read."""
