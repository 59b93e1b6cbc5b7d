"""A file as the formats read it: its bytes (gunzipped when they are gzip), its text, and its JSON document.

Whatever the file's name, gzip is recognised by its magic bytes; a gzip stream cut off mid-way yields the
bytes it holds (and a problem). Text is UTF-8 after any byte-order mark (UTF-8, UTF-16 or UTF-32); a byte
that is not UTF-8 is replaced by U+FFFD and remembered with its place, so the reader can say which entry
held it instead of refusing the file. The document is parsed once and shared by detection and reading
(:mod:`amk.formats.jsonwalk` keeps every complete entry of a torn or open file).
"""

from __future__ import annotations

import codecs
import gzip
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from amk.core.errors import ImportFormatError
from amk.formats import ImportItem
from amk.formats.jsonwalk import Walked, walk_document

GZIP_MAGIC = b"\x1f\x8b"
HEAD_BYTES = 65_536
# UTF-32 marks first: the UTF-32-LE mark starts with the UTF-16-LE one.
_BOMS = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"), (codecs.BOM_UTF16_LE, "utf-16"),
         (codecs.BOM_UTF16_BE, "utf-16"))


def is_gzip(path: Path) -> bool:
    with path.open("rb") as f:
        return f.read(2) == GZIP_MAGIC


def open_binary(path: Path) -> IO[bytes]:
    """``path`` opened for reading bytes, gunzipped as it is read when it is gzip (by its magic bytes)."""
    try:
        return gzip.open(path, "rb") if is_gzip(path) else path.open("rb")
    except OSError as exc:
        raise ImportFormatError(f"{path}: cannot be read ({exc.strerror or exc}); check the path.") from None


def position(text: str, index: int) -> str:
    """``line L column C`` of a character index, as JSON errors name places (both from 1)."""
    line = text.count("\n", 0, index) + 1
    return f"line {line} column {index - (text.rfind(chr(10), 0, index) + 1) + 1}"


class Source:
    """One input file, read lazily: ``head()`` for detection, ``text()`` and ``document()`` for reading.

    ``problems`` collects what was wrong with the bytes themselves (a cut gzip stream), as
    (where, reason) pairs; ``replaced`` lists the (character index, bytes) of every non-UTF-8 byte run.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.problems: list[tuple[str, str]] = []
        self.replaced: list[tuple[int, bytes]] = []
        self.encoding = "utf-8"
        self._text: str | None = None
        self._document: Walked | None = None

    def _bytes(self) -> bytes:
        try:
            raw = self.path.read_bytes()
        except OSError as exc:
            raise ImportFormatError(f"{self.path}: cannot be read ({exc.strerror or exc}); check the path.") from None
        if not raw.startswith(GZIP_MAGIC):
            return raw
        try:
            return gzip.decompress(raw)
        except (EOFError, OSError, zlib.error) as exc:
            stream = zlib.decompressobj(16 + zlib.MAX_WBITS)
            try:
                data = stream.decompress(raw)
            except zlib.error:
                data = b""
            reason = f"the gzip stream is damaged or cut off ({exc}); the {len(data)} bytes before that point were read"
            self.problems.append((str(self.path), reason))
            return data

    def head(self) -> str:
        """The decoded start of the file (up to 64 KiB of its bytes), for detection; bad bytes replaced."""
        if self._text is not None:
            return self._text[:HEAD_BYTES]
        try:
            with open_binary(self.path) as f:
                data = f.read(HEAD_BYTES)
        except (EOFError, OSError, zlib.error):
            data = self._bytes()[:HEAD_BYTES]
        encoding = _encoding(data)
        if encoding == "utf-8" and data.startswith(codecs.BOM_UTF8):
            data = data[len(codecs.BOM_UTF8):]
        return data.decode(encoding, errors="replace")

    def text(self) -> str:
        """The whole decoded text (cached); every non-UTF-8 byte run replaced by U+FFFD and listed in ``replaced``."""
        if self._text is None:
            data = self._bytes()
            self.encoding = _encoding(data)
            if self.encoding == "utf-8":
                self._text = _decode_utf8(data, self.replaced)
            else:
                self._text = data.decode(self.encoding, errors="replace")
        return self._text

    def document(self) -> Walked:
        """The JSON document, walked entry by entry where it does not parse whole (cached)."""
        if self._document is None:
            self._document = walk_document(self.text(), exact=not self.replaced)
        return self._document

    def lines(self) -> Iterator[tuple[int, bytes]]:
        """(line number, raw bytes) of each line, streamed (gunzipped by magic); a cut gzip stream ends the
        lines with a problem in ``problems``."""
        with open_binary(self.path) as f:
            lineno = 0
            try:
                for lineno, raw in enumerate(f, 1):
                    yield lineno, raw
            except (EOFError, OSError, zlib.error) as exc:
                reason = f"the gzip stream is damaged or cut off ({exc}); the lines before it were read"
                self.problems.append((f"{self.path}:{lineno + 1}", reason))


def _encoding(data: bytes) -> str:
    """The encoding a byte-order mark names: UTF-16 or UTF-32 (their codecs read the mark), else UTF-8."""
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            return encoding
    return "utf-8"


def _decode_utf8(data: bytes, replaced: list[tuple[int, bytes]]) -> str:
    """UTF-8 text of ``data`` (after a UTF-8 BOM), each invalid byte run replaced by U+FFFD and recorded
    as (character index, bytes); linear in the size whatever the number of bad bytes."""
    start = len(codecs.BOM_UTF8) if data.startswith(codecs.BOM_UTF8) else 0
    try:
        return data[start:].decode("utf-8")
    except UnicodeDecodeError:
        pass
    view = memoryview(data)
    parts: list[str] = []
    i, n = start, 0
    while i < len(data):
        try:
            text, _ = codecs.utf_8_decode(view[i:], "strict", True)
            parts.append(text)
            break
        except UnicodeDecodeError as exc:
            good, _ = codecs.utf_8_decode(view[i:i + exc.start], "strict", True)
            parts += [good, "\ufffd"]
            n += len(good)
            replaced.append((n, bytes(view[i + exc.start:i + exc.end])))
            n += 1
            i += exc.end
    return "".join(parts)


def check_header(source: Source, container: str) -> None:
    """ImportFormatError when a top-level member other than ``container`` (the one holding the entries) was
    cut off: a header read in part would give wrong values to every entry."""
    cut = sorted(source.document().partial - {container})
    if cut:
        raise ImportFormatError(f"{source.path}: the file is cut off inside its header field(s) {cut}, so none of "
                                f"its entries can be read right.")


def walk_items(source: Source, container: str, read: int) -> Iterator[ImportItem]:
    """What the walk of ``source`` found about its structure, as items: each damaged entry and a cut-off
    tail as a problem (naming the file, the place and the entry's key), a file left open as a note.
    ``container`` is the member that holds the entries and ``read`` how many of them were read."""
    from amk.formats.values import note, problem

    walked, text, path = source.document(), source.text(), source.path
    for damage in walked.damage:
        where = f"{path}@{position(text, damage.start)}"
        entry = f"entry {damage.key!r}" if damage.key is not None else "an entry"
        if damage.cut and not damage.in_entry:
            yield problem(where, f"the file is cut off or damaged inside its top-level object ({damage.what}); "
                                 f"nothing after it could be read ({read} entries of {container!r} were read)")
        elif not damage.in_entry:
            yield problem(where, f"{damage.what}; it was not read")
        elif damage.cut:
            yield problem(where, f"the file is cut off or damaged inside {entry} (at {position(text, len(text))}, "
                                 f"the end of the file: {damage.what}); the {read} whole entries before it were "
                                 "read")
        else:
            yield problem(f"{path}#{damage.key}" if damage.key is not None else where,
                          f"{entry} at {position(text, damage.start)} cannot be read ({damage.what}); the entries "
                          "after it were read")
    if walked.state == "open":
        yield note(str(path), f"the file was left open (no closing brackets: a run that was interrupted or is "
                              f"still going); its {read} whole entries were read")
    if source.encoding != "utf-8":
        yield note(str(path), f"read as {source.encoding.upper()} (its byte-order mark)")
