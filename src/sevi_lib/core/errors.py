"""User-facing exceptions.

Every error that a physicist can cause by what they feed the tool (a missing file, a wrong
dataset, an unphysical parameter set) is raised as a :class:`SeviError` with a one-line message
naming the file or the parameter and the problem. The ``sevi`` command turns it into
``sevi: error: <message>`` on stderr and exit status 2; anything else is a bug and keeps its
traceback.
"""


class SeviError(Exception):
    """Base class of the errors a user can cause and fix."""


class InputError(SeviError):
    """A file or argument is missing, unreadable or has the wrong layout."""


class UnphysicalError(SeviError, ValueError):
    """A beta vector whose angular density is negative somewhere on [-1, 1]."""


class SettingsError(InputError, ValueError):
    """A setting of the wrong type or out of range; the message starts with the field's name.

    Every settings dataclass raises it from ``__post_init__`` (:func:`check_settings`), so a
    settings object that exists is valid. It is a ``ValueError`` too, for callers that build
    settings from plain values.
    """


def check_settings(checks):
    """Raise :class:`SettingsError` with the message of the first ``(ok, message)`` pair that fails.

    Parameters
    ----------
    checks : iterable of (bool, str)
        Each condition with its message, which starts with the field's name
        (``"threshold must be in 1..254"``).
    """
    for ok, message in checks:
        if not ok:
            raise SettingsError(message)


class OutputError(SeviError, OSError):
    """An output could not be written (disk full, no permission, a read-only file system ...).

    Raised by the atomic writers of :mod:`sevi_lib.core.io` after the temporary file is removed,
    so nothing that looks complete is left behind.
    """
