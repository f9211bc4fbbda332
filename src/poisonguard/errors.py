"""The typed error hierarchy of poisonguard.

Every error the library raises on purpose derives from :class:`PoisonguardError`,
which is a :class:`ValueError` so that generic callers can catch it. Each class
carries an ``exit_code`` that the CLI uses and an ``http_status`` that the HTTP
service uses, so the mapping is declared once, here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

__all__ = [
    "PoisonguardError",
    "InputError",
    "DataError",
    "ConfigError",
    "NotFittedError",
    "DetectorFailedError",
    "PartitionFailedError",
    "SchemaMismatchError",
    "MissingExtraError",
    "NotFoundError",
    "IntegrityError",
    "KeyMissingError",
    "StoreError",
    "GateBlockedError",
    "ThresholdExceeded",
    "RateLimitError",
    "AuthError",
]


class PoisonguardError(ValueError):
    """Base class of every deliberate poisonguard error.

    Parameters
    ----------
    message : str
        The one-line message. A parameter the caller passed appears as ``{name}``
        (e.g. ``"{top} must be >= 1, got 0"``) and is listed in ``params``: the library
        renders it as the parameter name (``top``), the CLI as its option (``--top``),
        so library errors name parameters and CLI errors name flags.
    params : sequence of str
        The parameter names that appear in ``message`` as ``{name}``.
    """

    exit_code: int = 1
    http_status: int = 400

    def __init__(self, message: str = "", *, params: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.params = tuple(params)

    def render(self, names: Mapping[str, str] | None = None) -> str:
        """The message with each ``{param}`` replaced by ``names[param]`` (default: the name itself)."""
        text = super().__str__()
        names = names or {}
        for p in self.params:
            # a library name with a role suffix (out_dir, id_col) may be spelled without it (--out, --id)
            shown = names.get(p) or names.get(p.rsplit("_", 1)[0]) if names else None
            text = text.replace("{" + p + "}", shown or p)
        return text

    def __str__(self) -> str:
        return self.render()


class InputError(PoisonguardError):
    """Bad usage or bad input: unknown column, unreadable file, invalid option value."""

    exit_code = 2
    http_status = 400


class DataError(InputError):
    """The data itself cannot be used (empty table, a single class, NaN labels...)."""

    http_status = 422


class ConfigError(InputError):
    """A configuration value (detector name, detector setting, config file) is invalid."""


class NotFoundError(InputError):
    """A named object (version, source, model) does not exist."""

    http_status = 404


class NotFittedError(PoisonguardError, AttributeError):
    """A component was used before ``fit``.

    Subclasses both ``ValueError`` and ``AttributeError``, as scikit-learn's does.
    """

    exit_code = 1
    http_status = 409


class DetectorFailedError(PoisonguardError):
    """A detector crashed; the scan result is *failed* and must block any gate."""

    exit_code = 5
    http_status = 500


class PartitionFailedError(PoisonguardError):
    """A partition's task failed on the cluster (a worker died, ran out of memory or raised
    something unexpected); the command fails closed and writes or records nothing.

    Exit code 5, as a failed scan: the run did not complete, through no fault of the input.
    """

    exit_code = 5
    http_status = 500


class SchemaMismatchError(DataError):
    """Two partitions of one dataset do not have the same columns and types (exit code 2).

    ``first`` and ``second`` name the two partitions compared.
    """

    def __init__(self, message: str, *, first: str, second: str) -> None:
        super().__init__(message)
        self.first = first
        self.second = second


class IntegrityError(PoisonguardError):
    """Verification failed: data, chain or signature do not match what was recorded."""

    exit_code = 4
    http_status = 409


class KeyMissingError(InputError):
    """A signing key is required but missing or unreadable."""


class StoreError(PoisonguardError):
    """The persistence store is missing, corrupt or of an unsupported schema version."""

    exit_code = 6
    http_status = 500


class GateBlockedError(PoisonguardError):
    """A fail-closed gate refused to pass."""

    exit_code = 3
    http_status = 409


class ThresholdExceeded(PoisonguardError):
    """A pipeline threshold (e.g. ``--fail-over``) was exceeded."""

    exit_code = 3
    http_status = 409


class RateLimitError(InputError):
    """Too many requests from one API token within its window; retry later."""

    exit_code = 3
    http_status = 429


class AuthError(PoisonguardError):
    """A missing, unknown or revoked API token (``http_status`` 401) or a wrong scope (403)."""

    exit_code = 2
    http_status = 401

    def __init__(self, message: str, *, http_status: int = 401) -> None:
        super().__init__(message)
        self.http_status = http_status


class MissingExtraError(ImportError):
    """An optional dependency is not installed; the message names the extra to install."""

    exit_code = 2
    http_status = 501

    def __init__(self, package: str, extra: str) -> None:
        super().__init__(
            f"this feature needs the optional package {package!r}; "
            f"install it with: pip install 'poisonguard[{extra}]'"
        )
        self.package = package
        self.extra = extra
