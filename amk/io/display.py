"""What is safe to print: URLs and connection strings without their passwords, text without control characters.

``redact`` hides every password a store URL (``postgresql://user:SECRET@host/db``, ``?password=SECRET``) or a
libpq connection string (``password=SECRET``) can carry. ``printable`` escapes control characters and the
Unicode characters that reorder or hide text, so a name can neither forge an output line nor drive the
terminal. ``shown`` is both: what every message with a name or URL uses.
"""

from __future__ import annotations

import re

HIDDEN = "***"

# scheme://user:PASSWORD@host : the password ends at the last '@' before the host part.
_URL_USERINFO = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.-]*://[^:/?#@\s'\"]*:)(?P<secret>[^\s'\"]*)(?=@)")
# password=SECRET in a URL query or a conninfo string (quoted values included).
_KEY_VALUE = re.compile(r"(?P<head>\b(?:password|passwd|pwd|sslpassword)\s*=\s*)(?P<secret>'(?:[^'\\]|\\.)*'|[^\s&;'\"]+)",
                        re.IGNORECASE)
# C0 and C1 controls, DEL, and the format characters that reorder (bidi) or hide (zero-width) text.
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]")


def redact(text: str) -> str:
    """``text`` with every password of a URL or connection string in it replaced by ``***``."""
    text = _URL_USERINFO.sub(lambda m: m.group("head") + HIDDEN, text)
    return _KEY_VALUE.sub(lambda m: m.group("head") + HIDDEN, text)


def _escape(match: re.Match) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: str, *, keep_newlines: bool = False) -> str:
    """``text`` with control and hiding characters escaped (``\\x1b``, ``\\u202e``); with ``keep_newlines``,
    line breaks are kept (a multi-line message of amk's own, never a name)."""
    if keep_newlines:
        return "\n".join(_UNPRINTABLE.sub(_escape, line) for line in text.split("\n"))
    return _UNPRINTABLE.sub(_escape, text)


def shown(text: object) -> str:
    """``str(text)`` as it may be printed: passwords hidden, control characters escaped."""
    return printable(redact(str(text)))
