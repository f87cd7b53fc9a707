"""User-facing errors: one line on stderr, exit code 2, never a traceback."""

from __future__ import annotations

import errno
import os
import sys
import warnings


class CardiobenchError(Exception):
    """An error the user can fix. ``str(err)`` is the one-line message shown by the CLI.

    ``hint`` (optional) says what to do about it and is appended after " - ". A plain exception, so that
    the library imports no CLI framework: the ``cardiobench`` command line (``cardiobench.cli.main``)
    prints it as ``Error: <message>`` on stderr and exits with ``exit_code`` (2).
    """

    exit_code = 2

    def __init__(self, message: str, hint: str | None = None):
        self.hint = hint
        full = message if not hint else f"{message} - {hint}"
        self.message = " ".join(full.split("\n"))
        super().__init__(self.message)

    def format_message(self) -> str:
        """The one-line message (with its hint), as the CLI shows it after ``Error: ``."""
        return self.message

    def __str__(self) -> str:
        return self.message


class UnknownComponentError(CardiobenchError):
    """A plugin name that no registry knows."""


class IncompatibleError(CardiobenchError):
    """A combination of components that cannot work together."""


class PluginLoadError(CardiobenchError):
    """A third-party plugin failed to import or register (raised only in strict mode)."""


class DataError(CardiobenchError):
    """Bad input data: corrupt file, wrong labels, missing folder..."""


#: errno -> what to do about it (the one-line hint of a filesystem error)
_OS_HINTS = {
    "ENOSPC": "the disk is full: free some space (or point CARDIOBENCH_CACHE_DIR / --out / --results elsewhere) "
              "and run the same command again; finished work is kept",
    "EDQUOT": "the disk quota is used up: free some space and run the same command again",
    "EACCES": "no permission: choose a writable location (--out, --results, CARDIOBENCH_CACHE_DIR) or fix the "
              "permissions",
    "EPERM": "not permitted: choose a writable location (--out, --results, CARDIOBENCH_CACHE_DIR) or fix the "
             "permissions",
    "EROFS": "the file system is read-only: choose a writable location (--out, --results, CARDIOBENCH_CACHE_DIR)",
    "ENOTDIR": "a path component is a file, not a folder: choose another path",
    "EISDIR": "that path is a folder: give a file name",
    "EEXIST": "a file of that name is in the way: remove it or choose another path",
    "ENOENT": "check the path",
    "ELOOP": "a symbolic link points to itself: fix or remove it",
    "ENAMETOOLONG": "the path is too long: choose a shorter one",
    "EMFILE": "too many open files: raise the limit (ulimit -n) and run the command again",
}


def os_error(exc: OSError) -> CardiobenchError:
    """An ``OSError`` as one line that names the path and the fix (the CLI's exit code 2)."""
    name = errno.errorcode.get(exc.errno or -1, "")
    paths = " -> ".join(str(p) for p in (exc.filename, exc.filename2) if p is not None)
    what = exc.strerror or str(exc) or type(exc).__name__
    return CardiobenchError(f"{what}: {paths}" if paths else what, _OS_HINTS.get(name, "check the path and the disk"))


_PACKAGE = os.path.dirname(os.path.abspath(__file__)) + os.sep


def warn(message: str, category: type[Warning] = UserWarning) -> None:
    """``warnings.warn`` attributed to the first caller outside cardiobench (a notebook cell, a script), so a
    warning points at the user's line, whatever depth of library code raised it."""
    frame, level = sys._getframe(1), 2  # stacklevel 1 is this function, 2 its caller
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(_PACKAGE):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, category, stacklevel=level)
