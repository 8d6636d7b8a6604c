"""Errors the command line turns into exit status 2 with a one-line message."""


class UsageError(Exception):
    """Bad input from the user: unknown tool, unreadable file, bad parameter, model not available."""


# Write failures that say something about the place, not about vfmstudio: a full disk or quota,
# a read-only or unwritable folder.
_PLACE_ERRNOS = frozenset({"ENOSPC", "EDQUOT", "EROFS", "EACCES", "EPERM", "EFBIG"})


def input_error_message(exc: BaseException) -> str | None:
    """The one-line message for a failure caused by the input or the machine, not by vfmstudio
    (exit status 2 rather than 1 "internal error"), or ``None``."""
    import errno

    if isinstance(exc, MemoryError):
        return "out of memory: the input is too large for this machine (try smaller images or a lower resolution)"
    if type(exc).__name__ == "DecompressionBombError":  # Pillow's; PIL may not even be imported
        return f"image refused as a decompression bomb ({' '.join(str(exc).split())})"
    if isinstance(exc, OSError) and exc.errno is not None and errno.errorcode.get(exc.errno) in _PLACE_ERRNOS:
        where = exc.filename if exc.filename is not None else "writing"
        return f"{where}: {exc.strerror or exc}"
    return None
