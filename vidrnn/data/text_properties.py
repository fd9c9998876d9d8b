"""Per-character properties of a text, the targets of the hidden-unit search of Karpathy, Johnson
and Fei-Fei 2015 ("Visualizing and Understanding Recurrent Networks", arXiv:1506.02078): the
cells they found track whether a character is inside a quotation or string, the position in
the line, and the depth of nested brackets and indentation in code.

Every property is an array with one value per character of the text (``float32``):

* ``in_string`` -- 1 inside a Python string literal (prefix and quotes included): ``'...'``, ``"..."``,
  ``'''...'''``, ``\"\"\"...\"\"\"``, with backslash escapes; ``#`` comments are not strings.
* ``bracket_depth`` -- how many ``(``, ``[``, ``{`` are open (outside strings and comments),
  counted after the character (an opening bracket is inside its own depth).
* ``indent_depth`` -- leading spaces of the character's line / 4 (tabs count as 4 spaces).
* ``column`` -- position in the line (0 for the first character after a newline).
* ``in_quote`` -- prose: 1 between an opening and a closing double quotation mark (``"`` or
  ``“ ”``), reset at a blank line (an unclosed quote does not run on for pages).
"""

from __future__ import annotations

import numpy as np

__all__ = ["CODE_PROPERTIES", "PROSE_PROPERTIES", "text_properties", "python_string_mask", "bracket_depth",
           "column_position", "indent_depth", "quotation_mask"]

CODE_PROPERTIES = ("in_string", "bracket_depth", "indent_depth", "column")
PROSE_PROPERTIES = ("in_quote", "column")

_OPEN, _CLOSE = "([{", ")]}"


def _scan_python(text: str) -> tuple[np.ndarray, np.ndarray]:
    """``(in_string, bracket_depth)`` by one pass of a small Python lexer (normal code, comment,
    single- or triple-quoted string)."""
    n = len(text)
    in_string = np.zeros(n, np.float32)
    depth = np.zeros(n, np.float32)
    d = 0
    i = 0
    quote = ""  # the open string's delimiter ("'", '"', "'''" or '"""'), "" outside strings
    comment = False
    while i < n:
        ch = text[i]
        if comment:
            if ch == "\n":
                comment = False
            depth[i] = d
            i += 1
            continue
        if quote:
            in_string[i] = 1
            depth[i] = d
            if ch == "\\" and i + 1 < n:  # an escaped character never ends the string
                in_string[i + 1] = 1
                depth[i + 1] = d
                i += 2
                continue
            if text.startswith(quote, i):
                in_string[i: i + len(quote)] = 1
                depth[i: i + len(quote)] = d
                i += len(quote)
                quote = ""
                continue
            if ch == "\n" and len(quote) == 1:  # an unterminated one-line string ends at the line's end
                in_string[i] = 0
                quote = ""
            i += 1
            continue
        if ch == "#":
            comment = True
        elif ch in "'\"":
            quote = ch * 3 if text.startswith(ch * 3, i) else ch
            in_string[i - _prefix_length(text, i): i + len(quote)] = 1
            depth[i: i + len(quote)] = d
            i += len(quote)
            continue
        elif ch in _OPEN:
            d += 1
        elif ch in _CLOSE:
            d = max(0, d - 1)
        depth[i] = d
        i += 1
    return in_string, depth


def _prefix_length(text: str, i: int) -> int:
    """Length of a string prefix (``r``, ``b``, ``f``, ``u``, ``rb``, ...) just before the quote at ``i``."""
    k = 0
    while k < 2 and i - k - 1 >= 0 and text[i - k - 1] in "rRbBfFuU":
        k += 1
    if k and i - k - 1 >= 0 and (text[i - k - 1].isalnum() or text[i - k - 1] == "_"):
        return 0  # the end of a name, not a prefix
    return k


def python_string_mask(text: str) -> np.ndarray:
    """1 for every character inside a Python string literal (delimiters included), else 0."""
    return _scan_python(text)[0]


def bracket_depth(text: str) -> np.ndarray:
    """Open ``([{`` brackets after each character, outside strings and comments."""
    return _scan_python(text)[1]


def column_position(text: str) -> np.ndarray:
    """Each character's position in its line (the newline itself ends its line)."""
    out = np.zeros(len(text), np.float32)
    col = 0
    for i, ch in enumerate(text):
        out[i] = col
        col = 0 if ch == "\n" else col + 1
    return out


def indent_depth(text: str, width: int = 4) -> np.ndarray:
    """Leading whitespace of each character's line, in levels of ``width`` spaces."""
    out = np.zeros(len(text), np.float32)
    start = 0
    for line in text.split("\n"):
        stripped = line.lstrip(" \t")
        lead = line[: len(line) - len(stripped)].replace("\t", " " * width)
        out[start: start + len(line) + 1] = len(lead) / width
        start += len(line) + 1
    return out[: len(text)]


def quotation_mask(text: str) -> np.ndarray:
    """1 inside a double quotation (``"..."`` or ``“...”``, marks included), reset at a blank line."""
    out = np.zeros(len(text), np.float32)
    inside = False
    for i, ch in enumerate(text):
        if ch == "\n" and i and text[i - 1] == "\n":
            inside = False
        if ch in '"“”':
            if ch == "“":
                inside = True
            elif ch == "”":
                out[i] = 1
                inside = False
                continue
            else:
                if inside:
                    out[i] = 1
                inside = not inside
                if not inside:
                    continue
        out[i] = 1 if inside else 0
    return out


def text_properties(text: str, names=CODE_PROPERTIES + ("in_quote",)) -> dict[str, np.ndarray]:
    """``{name: (len(text),) float32}`` for each property in ``names`` (see the module docstring).

    Raises:
        ValueError: an unknown property name.
    """
    known = {"in_string", "bracket_depth", "indent_depth", "column", "in_quote"}
    bad = [n for n in names if n not in known]
    if bad:
        raise ValueError(f"unknown text properties {bad}; expected some of {sorted(known)}")
    out = {}
    if {"in_string", "bracket_depth"} & set(names):
        s, d = _scan_python(text)
        out.update(in_string=s, bracket_depth=d)
    if "indent_depth" in names:
        out["indent_depth"] = indent_depth(text)
    if "column" in names:
        out["column"] = column_position(text)
    if "in_quote" in names:
        out["in_quote"] = quotation_mask(text)
    return {n: out[n] for n in names}
