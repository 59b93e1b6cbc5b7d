"""A JSON object read member by member, so a torn, open or damaged file keeps every entry that is whole.

Tuning files are one JSON object whose big member holds the entries (Kernel Tuner's ``cache`` object, a
T4 ``results`` array). Kernel Tuner writes its cache as it goes and closes the object at the end, so an
interrupted run leaves it *open* (every entry whole: its normal state); a killed run or a full disk
leaves it *torn* (cut inside an entry); editors and concatenation leave damage in the middle or data
after the end. :func:`walk_document` parses the whole text with ``json.loads`` when it can (the fast
path) and otherwise walks the top-level object key by key (any order) and each object or array member
entry by entry with ``json.JSONDecoder.raw_decode``; after an entry it cannot read it resumes at the
next line that starts an entry (Kernel Tuner writes one entry per line). ``NaN`` and ``Infinity`` parse,
as Kernel Tuner's encoder writes them; the reader of each format decides what they mean.
"""

from __future__ import annotations

import json
import re
from typing import Any

import attrs

_WS = re.compile(r"[ \t\n\r\x00]*")
_DECODER = json.JSONDecoder()


@attrs.frozen
class Entry:
    """One member of a walked object (``key``) or array (its index), and where its text starts and ends."""

    key: Any
    value: Any
    start: int = -1  # character offsets in the text; -1 when the document parsed whole
    end: int = -1


@attrs.frozen
class Damage:
    """A place where the text could not be read: where, the key of the entry there when known, and what."""

    start: int
    what: str
    key: Any = None
    cut: bool = False  # True: nothing readable follows (the file was cut off here)
    in_entry: bool = False  # True: inside an entry of a container (else in the top-level object or after it)


@attrs.define
class Walked:
    """What :func:`walk_document` read: the top-level members, the entries of each walked container, and
    how the text ended (``closed``, ``open`` = ended between whole entries, ``torn`` = cut inside one)."""

    fields: dict[str, Any] = attrs.field(factory=dict)
    containers: dict[str, list[Entry]] = attrs.field(factory=dict)
    state: str = "closed"
    damage: list[Damage] = attrs.field(factory=list)
    not_an_object: str | None = None  # why the text is no JSON object at all
    partial: set[str] = attrs.field(factory=set)  # members whose object or array the text cut off

    def entries(self, key: str) -> list[Entry]:
        """The entries of member ``key`` (an object's members or an array's items), in file order; for an
        object a key given twice counts once, the last (as ``json.loads`` reads it)."""
        if key in self.containers:
            walked = self.containers[key]
            if walked and isinstance(walked[0].key, str):
                last = {e.key: e for e in walked}
                return [e for e in walked if last[e.key] is e]
            return list(walked)
        value = self.fields.get(key)
        if isinstance(value, dict):
            return [Entry(k, v) for k, v in value.items()]
        if isinstance(value, list):
            return [Entry(i, v) for i, v in enumerate(value)]
        return []

    def entry_at(self, index: int) -> Entry | None:
        """The walked entry whose text holds character ``index``, if any."""
        for entries in self.containers.values():
            for entry in entries:
                if entry.start <= index < entry.end:
                    return entry
        return None


def _skip(text: str, i: int) -> int:
    return _WS.match(text, i).end()


def _skip_separators(text: str, i: int) -> int:
    while True:
        i = _skip(text, i)
        if i < len(text) and text[i] == ",":
            i += 1
            continue
        return i


def _member(text: str, i: int, is_object: bool) -> tuple[Any, Any, int]:
    """(key, value, end) of the member starting at ``i``; ValueError when it does not parse."""
    if not is_object:
        value, end = _DECODER.raw_decode(text, i)
        return None, value, end
    if text[i:i + 1] != '"':
        raise ValueError("a member must start with a quoted key")
    key, j = _DECODER.raw_decode(text, i)
    j = _skip(text, j)
    if text[j:j + 1] != ":":
        raise ValueError("':' expected after the key")
    value, end = _DECODER.raw_decode(text, _skip(text, j + 1))
    return key, value, end


def _key_at(text: str, i: int) -> Any:
    try:
        key, _ = _DECODER.raw_decode(text, i)
    except ValueError:
        return None
    return key if isinstance(key, str) else None


# A member of an object of objects (a Kernel Tuner cache): a quoted key, a colon and an object.
_OBJECT_MEMBER = re.compile(r'"(?:[^"\\\n]|\\.)*"[ \t]*:[ \t]*\{')


def _resume(text: str, i: int, is_object: bool, close: str) -> int | None:
    """Where reading resumes after a member at ``i`` that cannot be read: a whole key-and-object member
    later on the same line (two lines run together), else the next line that starts a whole member or
    closes the container."""
    line_end = text.find("\n", i)
    if is_object:
        for match in _OBJECT_MEMBER.finditer(text, i + 1, line_end if line_end >= 0 else len(text)):
            try:
                _member(text, match.start(), True)
            except ValueError:
                continue
            return match.start()
    while True:
        newline = text.find("\n", i)
        if newline < 0:
            return None
        i = _skip(text, newline + 1)
        if i >= len(text):
            return None
        if text[i] == close:
            return i
        try:
            _member(text, i, is_object)
        except ValueError:
            continue
        return i


def _walk_container(text: str, start: int, out: Walked, name: str) -> tuple[Any, int, str]:
    """Walk the object or array at ``start`` entry by entry: (what was read, end, ``closed|eof|torn``)."""
    is_object = text[start] == "{"
    close = "}" if is_object else "]"
    entries: list[Entry] = []
    out.containers[name] = entries
    i = start + 1
    while True:
        i = _skip_separators(text, i)
        if i >= len(text):
            return _container_value(entries, is_object), i, "eof"
        if text[i] == close:
            return _container_value(entries, is_object), i + 1, "closed"
        try:
            key, value, end = _member(text, i, is_object)
        except ValueError as exc:
            key = _key_at(text, i) if is_object else len(entries)
            resume = _resume(text, i, is_object, close)
            out.damage.append(Damage(i, f"{exc}", key, cut=resume is None, in_entry=True))
            if resume is None:
                return _container_value(entries, is_object), len(text), "torn"
            i = resume
            continue
        entries.append(Entry(key if is_object else len(entries), value, i, end))
        i = end


def _container_value(entries: list[Entry], is_object: bool) -> Any:
    return {e.key: e.value for e in entries} if is_object else [e.value for e in entries]


def walk_document(text: str, *, exact: bool = True) -> Walked:
    """Read ``text`` as one JSON object; see the module docstring. ``exact=False`` walks every container
    entry by entry even when the text parses whole (so each entry's place is known)."""
    if exact:
        try:
            document = json.loads(text)
        except ValueError:
            document = None
        else:
            if isinstance(document, dict):
                return Walked(fields=document)
            return Walked(not_an_object=f"it is a JSON {type(document).__name__}, not an object")
    out = Walked()
    i = _skip(text, 0)
    if i >= len(text):
        out.not_an_object = "it is empty"
        return out
    if text[i] != "{":
        out.not_an_object = "it does not start with '{'"
        return out
    i += 1
    while True:
        i = _skip_separators(text, i)
        if i >= len(text):
            out.state = "open"
            return out
        if text[i] == "}":
            end = _skip(text, i + 1)
            if end < len(text):
                out.damage.append(Damage(end, "data after the end of the JSON object (two files joined?)"))
            return out
        try:
            key, after_key = _DECODER.raw_decode(text, i)
        except ValueError:
            key, after_key = None, i
        colon = _skip(text, after_key)
        if not isinstance(key, str) or text[colon:colon + 1] != ":":
            _header_cut(out, text, i, key)
            return out
        value_start = _skip(text, colon + 1)
        if value_start < len(text) and text[value_start] in "{[":
            value, i, ended = _walk_container(text, value_start, out, key)
            out.fields[key] = value
            if ended != "closed":
                out.partial.add(key)
                out.state = "open" if ended == "eof" else "torn"
                return out
            continue
        try:
            value, i = _DECODER.raw_decode(text, value_start)
        except ValueError:
            _header_cut(out, text, i, key)
            return out
        out.fields[key] = value


def _header_cut(out: Walked, text: str, i: int, key: Any) -> None:
    """The top-level object stops being readable at ``i`` (inside member ``key`` when known)."""
    if not text[i:].strip(" \t\r\n\x00,"):
        out.state = "open"
        return
    out.state = "torn"
    out.damage.append(Damage(i, f"the top-level member {key!r} cannot be read" if isinstance(key, str) else
                             "the top-level object cannot be read from here", key, cut=True))

