"""JSON Schema patterns with ECMA-262 semantics, on Python's ``re``.

JSON Schema says a ``pattern`` is an ECMA-262 regular expression. Python's ``re`` reads the same
text differently: its ``\\s`` takes U+001C-U+001F and U+0085 and not U+FEFF, ``\\d`` and ``\\w`` take
non-ASCII digits and letters, ``.`` takes CR and U+2028/U+2029, and ``$`` matches before a final
newline. ``translate`` rewrites a pattern into a Python one that means what ECMA-262 (``u`` flag)
means, class escapes included; a construct it cannot render faithfully raises ``EcmaPatternError``.
``rust_patterns`` does the same for jsonschema_rs, whose engine (Rust's ``regex``/``fancy-regex``) has
its own readings: ``.`` takes CR and U+2028/U+2029, ``\\d``, ``\\w`` and ``\\s`` are Unicode.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# ECMA-262 WhiteSpace (TAB, VT, FF, SP, NBSP, ZWNBSP and every Zs) and LineTerminator (LF, CR, LS, PS).
WHITESPACE = (
    "\t\n\x0b\x0c\r \xa0\u1680" + "".join(map(chr, range(0x2000, 0x200B))) + "\u2028\u2029\u202f\u205f\u3000\ufeff"
)
LINE_TERMINATORS = "\n\r\u2028\u2029"
DIGITS = "0123456789"
WORD = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_"


class EcmaPatternError(ValueError):
    """A pattern that is not ECMA-262, or that this translation cannot render in Python's ``re``."""


@dataclass(frozen=True)
class Dialect:
    """How one regex engine writes what a translated pattern needs."""

    name: str
    point: Callable[[int], str]  # one code point, escaped
    end: str  # ECMA's ``$`` without the m flag: the end of the input only
    named_groups: bool  # (?<name>...) and \\k<name>, as Python spells them
    surrogates: bool  # whether code points U+D800-U+DFFF exist for it


PYTHON = Dialect("python", lambda code: f"\\U{code:08x}", r"\Z", True, True)
# Rust's regex has no lone surrogates and no \Z; jsonschema_rs's fancy-regex takes \z and lookaround.
RUST = Dialect("rust", lambda code: f"\\x{{{code:x}}}", r"\z", False, False)


def _ranges(chars: str, dialect: Dialect, negate: bool = False) -> str:
    """A character-class body (no brackets) matching ``chars``, or every other code point."""
    points = sorted({ord(c) for c in chars})
    spans: list[tuple[int, int]] = []
    for point in points:
        if spans and spans[-1][1] == point - 1:
            spans[-1] = (spans[-1][0], point)
        else:
            spans.append((point, point))
    if negate:
        gaps, start = [], 0
        for low, high in spans:
            if low > start:
                gaps.append((start, low - 1))
            start = high + 1
        if start <= 0x10FFFF:
            gaps.append((start, 0x10FFFF))
        spans = gaps
    if not dialect.surrogates:
        spans = [part for low, high in spans for part in _without_surrogates(low, high)]
    point = dialect.point
    return "".join(point(low) if low == high else f"{point(low)}-{point(high)}" for low, high in spans)


def _without_surrogates(low: int, high: int) -> list[tuple[int, int]]:
    parts = [(low, min(high, 0xD7FF)), (max(low, 0xE000), high)]
    return [(a, b) for a, b in parts if a <= b]


@functools.cache
def _class_body(dialect: Dialect, escape: str) -> str:
    """What a class escape (``d``, ``D``, ``w``, ``W``, ``s``, ``S``) matches, as the body of a character class."""
    chars = {"d": DIGITS, "w": WORD, "s": WHITESPACE}[escape.lower()]
    return _ranges(chars, dialect, negate=escape.isupper())


# ECMA-262 escapes Python reads the same way (in and out of a class); other letters are refused.
_SAME_ESCAPES = frozenset("fnrtv")
_HEX = frozenset("0123456789abcdefABCDEF")


def translate(pattern: str, dialect: Dialect = PYTHON) -> str:
    """The pattern for ``dialect`` (Python's ``re`` by default) that means what ECMA-262 ``pattern`` means
    (``EcmaPatternError`` if none)."""
    out: list[str] = []
    i, n = 0, len(pattern)
    in_class = False
    while i < n:
        char = pattern[i]
        if char == "\\":
            token, i = _escape(pattern, i, in_class, dialect)
            out.append(token)
            continue
        if in_class:
            if char == "]":
                in_class = False
                out.append("]")
            elif char in "[&~|":  # literal in an ECMA class; Python warns of future set operations
                out.append("\\" + char)
            elif char == "-" and pattern.startswith("--", i) and dialect is RUST:  # Rust: class difference
                raise EcmaPatternError(f"{pattern!r}: '--' in a class is not translated for {dialect.name}")
            else:
                out.append(char)
            i += 1
            continue
        if char == "[":
            negated = pattern.startswith("[^", i)
            start = i + (2 if negated else 1)
            if pattern.startswith("]", start):  # [] matches nothing, [^] anything
                out.append(r"(?s:.)" if negated else "(?!)")
                i = start + 1
                continue
            out.append("[^" if negated else "[")
            in_class = True
            i = start
        elif char == ".":
            out.append(f"[{_ranges(LINE_TERMINATORS, dialect, negate=True)}]")
            i += 1
        elif char == "{" and pattern.startswith("{,", i):  # Python reads {,n} as a quantifier; ECMA as text
            out.append("\\{")
            i += 1
        elif char == "$":
            out.append(dialect.end)  # ECMA's $ (no m flag) is the end of input, never before a final newline
            i += 1
        elif char == "(":
            if pattern.startswith("(?<", i) and not pattern.startswith(("(?<=", "(?<!"), i):
                if not dialect.named_groups:
                    raise EcmaPatternError(f"{pattern!r}: named groups are not translated for {dialect.name}")
                out.append("(?P<")  # a named group
                i += 3
            elif pattern.startswith("(?", i) and not pattern.startswith(("(?:", "(?=", "(?!", "(?<"), i):
                raise EcmaPatternError(f"{pattern!r}: '(?{pattern[i + 2 : i + 3]}' is not ECMA-262")
            else:
                out.append("(")
                i += 1
        else:
            out.append(char)
            i += 1
    if in_class:
        raise EcmaPatternError(f"{pattern!r}: a character class is not closed")
    return "".join(out)


def _escape(pattern: str, i: int, in_class: bool, dialect: Dialect) -> tuple[str, int]:
    """The ``dialect`` form of the escape at ``pattern[i]`` (a backslash) and the index after it."""
    if i + 1 >= len(pattern):
        raise EcmaPatternError(f"{pattern!r}: ends with a backslash")
    char = pattern[i + 1]
    if char in "dDwWsS":
        body = _class_body(dialect, char)
        return (body if in_class else f"[{body}]"), i + 2
    if char in "bB" and not in_class:  # word boundaries by ECMA's (ASCII) \w
        word = f"[{_class_body(dialect, 'w')}]"
        boundary = f"(?:(?<={word})(?!{word})|(?<!{word})(?={word}))"
        return (boundary if char == "b" else f"(?!{boundary})"), i + 2
    if char == "b":  # in a class: backspace
        return r"\x08", i + 2
    if char == "u":
        if pattern.startswith("{", i + 2):
            end = pattern.find("}", i + 3)
            digits = pattern[i + 3 : end] if end > 0 else ""
            if not digits or set(digits) - _HEX or int(digits, 16) > 0x10FFFF:
                raise EcmaPatternError(f"{pattern!r}: bad \\u{{...}} escape")
            return dialect.point(int(digits, 16)), end + 1
        digits = pattern[i + 2 : i + 6]
        if len(digits) == 4 and not set(digits) - _HEX:
            return dialect.point(int(digits, 16)), i + 6
        raise EcmaPatternError(f"{pattern!r}: bad \\u escape")
    if char == "x":
        digits = pattern[i + 2 : i + 4]
        if len(digits) == 2 and not set(digits) - _HEX:
            return dialect.point(int(digits, 16)), i + 4
        raise EcmaPatternError(f"{pattern!r}: bad \\x escape")
    if char == "c":
        letter = pattern[i + 2 : i + 3]
        if letter.isascii() and letter.isalpha():
            return dialect.point(ord(letter) % 32), i + 3
        raise EcmaPatternError(f"{pattern!r}: bad \\c escape")
    if char == "0" and not pattern[i + 2 : i + 3].isdigit():
        return dialect.point(0), i + 2
    if char in "123456789" and not in_class and dialect.named_groups:  # a back reference, as in Python
        end = i + 1
        while end < len(pattern) and pattern[end].isdigit():
            end += 1
        return "\\" + pattern[i + 1 : end], end
    if char == "k" and not in_class and dialect.named_groups and pattern.startswith("<", i + 2):
        end = pattern.find(">", i + 3)
        if end > 0:
            return f"(?P={pattern[i + 3 : end]})", end + 1
    if char in _SAME_ESCAPES:
        return "\\" + char, i + 2
    if char.isascii() and not char.isalnum():  # a syntax character, escaped: the same in Python
        return "\\" + char, i + 2
    # \p{...} (Python's re has no Unicode properties), octal escapes, and letters ECMA-262 (u flag) refuses.
    raise EcmaPatternError(f"{pattern!r}: '\\{char}' cannot be matched as ECMA-262 means it")


@functools.lru_cache(maxsize=1024)
def compile_pattern(pattern: str) -> re.Pattern[str]:
    """``pattern`` (ECMA-262) compiled for Python's ``re``; cached, as schemas repeat few patterns."""
    try:
        return re.compile(translate(pattern))
    except re.error as exc:
        raise EcmaPatternError(f"{pattern!r}: {exc}") from None


def search(pattern: str, text: str) -> bool:
    """Whether ``pattern`` (ECMA-262, unanchored as JSON Schema uses it) matches somewhere in ``text``."""
    return compile_pattern(pattern).search(text) is not None


def python_patterns(node: Any) -> Any:
    """A copy of a JSON Schema (or an OpenAPI document) whose ``pattern`` strings mean for Python's
    ``re`` what they mean in ECMA-262: for validators and generators built on ``re`` (openapi-core,
    Hypothesis). A pattern that cannot be translated is kept as it is."""

    def python(pattern: str) -> str:
        try:
            return translate(pattern)
        except EcmaPatternError:
            return pattern

    return _map_patterns(node, python)


def rust_patterns(node: Any) -> Any:
    """A copy of a JSON Schema whose ``pattern`` strings mean for jsonschema_rs what they mean in
    ECMA-262; ``EcmaPatternError`` if one cannot be translated (then jsonschema_rs must not judge it)."""
    return _map_patterns(node, functools.partial(translate, dialect=RUST))


def _map_patterns(node: Any, change: Callable[[str], str]) -> Any:
    if isinstance(node, list):
        return [_map_patterns(item, change) for item in node]
    if not isinstance(node, dict):
        return node
    return {
        key: change(value) if key == "pattern" and isinstance(value, str) else _map_patterns(value, change)
        for key, value in node.items()
    }
