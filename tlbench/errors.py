"""Errors meant for people: each carries one line that says what and where.

Anything derived from `UserError` ends a command with that line and exit code 2;
any other exception reaching the CLI is a bug in tlbench or in a plugin.
"""


class UserError(Exception):
    """A mistake in what the user asked for: bad suite, unknown plugin, bad argument."""

    exit_code = 2


class SuiteError(UserError):
    """A suite file that cannot be run as written."""


class ParamError(UserError):
    """A plugin parameter that does not match the plugin's schema."""


class PluginError(UserError):
    """A plugin that cannot be loaded, or a name that no plugin registered."""


class ResourceUnavailable(UserError):
    """A model, weights file or data set that cannot be had (missing file, offline hub)."""


class NeedsNetwork(ResourceUnavailable):
    """Something a suite uses is not on this machine yet and would be downloaded. A run
    stops on it; a dry run notes it, unless the user declared the machine offline
    (`declared_offline`), when the run certainly could not have it."""

    def __init__(self, message: str, declared_offline: bool = False):
        super().__init__(message)
        self.declared_offline = declared_offline


def first_line(error: BaseException | str, limit: int = 500) -> str:
    """The first non-empty line of an error's message (its type's name when it has none):
    what a one-line report of the error shows."""
    text = str(error).strip()
    if not text:
        return type(error).__name__ if isinstance(error, BaseException) else ""
    return text.splitlines()[0][:limit]
