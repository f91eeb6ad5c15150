"""Where the code is in a text: fenced blocks, inline code, code-like lines and code tokens in prose.

Instruction data mixes prose and code, often without fences (`def f(x):` straight after "Write a
function ..."). Stages that judge prose need to know which characters are code: `pii` must not
run NER or loose patterns on `word_count.get(...)`, `langid` must judge the prose, not the code.
`code_spans` gives character ranges; `mask` blanks them out keeping every offset; `prose` drops
them. Heuristics, line by line:

- fenced blocks (``` or ~~~, to the closing fence or the end of the text) and `inline` spans;
- code lines: a language keyword opening the line (`def`, `import`, `return`, `#include`,
  `SELECT` ...), an assignment (`x = f(y)`), a call statement (`print(x)`), a line ending in `{`
  or `}`, a line of closing brackets, a statement ending in `;` with a bracket or `=` (verse ends
  in ";" too), a CSS rule, a tag (`<div>`), or a line dense in operators;
- indented, comment and blank lines join a run of code lines they sit in or next to;
- in prose lines: calls (`line.strip()`), dotted names with `_` or inner capitals
  (`word_count.get`), and snake_case identifiers.
"""

from __future__ import annotations

import json
import re

FENCE = re.compile(r"^[ \t]*(```|~~~)[^\n]*\n.*?(?:^[ \t]*\1[ \t]*$|\Z)", re.M | re.S)
DOCSTRING = re.compile(r"^[ \t]*[rRuUbBfF]{0,2}(\"\"\"|\'\'\')(?:.*?)\1", re.M | re.S)  # a Python docstring block
INLINE = re.compile(r"`[^`\n]+`")
KEYWORD = re.compile(
    r"^\s*(?:def\s+\w+\s*\(|class\s+\w+[\s(:{]|import\s+[\w.{*]|use\s+[\w:]+(?:::|;)|\$[\w-]+\s*:|from\s+[\w.]+\s+import\b|return\b(?=\s*(?:$|[^\sa-z]|[\w.]+\s*(?:[-+*/%<>=!&|,;()\[\]]|$)))|"
    r"elif\b|else\s*:|else\s*\{|try\s*[:{]|except\b.*:|finally\s*[:{]|with\s+.+:\s*$|lambda\b|yield\b|raise\s+\w|"
    r"if\s*\(|for\s*\(|while\s*\(|switch\s*\(|catch\s*\(|if\s+.+:\s*$|for\s+\w+(?:\s*,\s*\w+)*\s+in\s+.+:\s*$|while\s+.+:\s*$|"
    r"function\b\s*[\w$]*\s*\(|(?:var|let|const)\s+[\w${}\[\], ]+\s*[=;:]|"
    r"(?:public|private|protected|static|final|abstract|async|export|extern)\s+\w|"
    r"(?:Public|Private|Protected)\s+(?:Function|Sub|Class|Property|Shared|Static|Void|Overrides)\b|(?:Function|Sub)\s+\w+\s*\(|"
    r"End\s+(?:Function|Sub|If|Class|Module|Select)\s*$|Dim\s+\w+\s+As\b|"
    r"(?:int|long|short|float|double|char|bool|boolean|void|auto|String|string|size_t|unsigned)\s+[*&]?\w+\s*[=;(,\[)]|"
    r"#include\b|#define\b|#import\b|package\s+[\w.]+;?\s*$|using\s+[\w.]+;|namespace\s+\w|struct\s+\w|enum\s+\w|"
    r"interface\s+\w|fn\s+\w+|impl\b|pub\s+\w|func\s+\w+|"
    r"(?:SELECT|INSERT\s+INTO|UPDATE|DELETE\s+FROM|CREATE\s+(?:TABLE|INDEX|VIEW|DATABASE)|ALTER\s+TABLE|DROP\s+TABLE)\b|"
    r"(?:FROM|WHERE|(?:LEFT\s+|RIGHT\s+|INNER\s+|OUTER\s+|FULL\s+)?JOIN|GROUP\s+BY|ORDER\s+BY|HAVING|LIMIT|VALUES)\s+\S|"
    r"(?:ON|AND|OR)\s+[\w.]+\s*[=<>]|"
    r"console\.\w+|System\.\w+|std::|echo\s|print\s*\(|printf\s*\(|puts\s|<\?php|\$\w+\s*=|@\w+(?:\(|\s*$)|#!/)"
)
ASSIGNMENT = re.compile(
    r"^\s*[\w$.\[\]'\"]+(?:\s*,\s*[\w$.\[\]]+)*\s*(?:(?:[-+*/%&|^]|<<|>>|\*\*|//)?=(?!=)|<-|:=)\s*\S"
)
CSS_RULE = re.compile(r"^\s*[\w-]+\s*:\s*[^;{}]+;\s*$")  # color: red;
CALL_LINE = re.compile(r"^\s*[\w$.]+(?:\[[^\]]*\])?\s*\(.*\)\s*;?\s*$")
TAG = re.compile(r"^\s*</?[a-zA-Z][\w:.-]*(?:\s[^>]*)?/?>|^\s*<\?xml\b")
COMMENT = re.compile(r"^\s*(?:#|//|/\*|\*|--|<!--)")
OPERATORS = re.compile(r"[(){}\[\];=<>+*/&|%^~]")  # not "-" (dates, phones, ranges) nor "!" (prose)
TOKENS = re.compile(
    r"\b[A-Za-z_$][\w$]*(?:\.[A-Za-z_$][\w$]*)*\([^()\n]{0,80}\)"  # calls: f(x), line.strip()
    r"|\b[A-Za-z_$][\w$]*(?:\.[A-Za-z_$][\w$]*)+(?=\()"  # a call opening: model.fit(
    r"|\b[A-Za-z_$][\w$]*(?:\.[A-Za-z_$][\w$]*)+\b"  # dotted names (kept only if code-like, see _token)
    r"|\b[A-Za-z][A-Za-z0-9]*(?:_[A-Za-z0-9]+)+\b"  # snake_case
)
INNER_CAPITAL = re.compile(r"[a-z0-9][A-Z]")
REDACTED = re.compile(r"<[A-Z][A-Z0-9_]*(?::[0-9a-f]+)?>|\*{4,}")
MAYBE_TOKEN = re.compile(r"[(_$]|\w\.[A-Za-z_$]")


def _token(match: re.Match) -> bool:
    """A dotted name is code when it has `_` or an inner capital (`word_count.get`, `self.myVar`);
    `example.com` or `e.g` is not."""
    t = match.group(0)
    opens = match.string[match.end() : match.end() + 1] == "("
    return t.endswith(")") or opens or "." not in t or "_" in t or bool(INNER_CAPITAL.search(t))


def _is_json(stripped: str) -> bool:
    """A line of JSON data (a record's fields, not a program): its strings are prose for PII."""
    if not (stripped[0] in "{[" and stripped[-1] in "}]" and '":' in stripped):
        return False
    try:
        json.loads(stripped)
    except ValueError:
        return False
    return True


def _is_code_line(line: str) -> bool:
    stripped = line.strip()
    if not stripped or _is_json(stripped):
        return False
    last = stripped[-1]
    if last in "{}" or set(stripped) <= set("}]);,"):  # opens or closes a block, or only closes brackets
        return True
    if KEYWORD.match(line) or TAG.match(line) or CALL_LINE.match(line) or (last == ";" and CSS_RULE.match(line)):
        return True
    symbols = len(OPERATORS.findall(stripped))
    if ASSIGNMENT.match(line) and (len(stripped.split()) <= 12 or symbols >= 3):
        return True
    if last == ";" and ("(" in stripped or "=" in stripped or "[" in stripped):
        return True
    return symbols >= 3 and symbols / len(stripped.replace(" ", "")) >= 0.2


def _depth(line: str) -> int:
    """How many brackets a line leaves open (a JS object or a call spanning lines)."""
    return sum(line.count(c) for c in "([{") - sum(line.count(c) for c in ")]}")


def _joins(line: str) -> bool:
    """Lines that belong to code next to them but prove nothing alone."""
    return not line.strip() or line.startswith(("  ", "\t")) or bool(COMMENT.match(line))


def code_spans(text: str) -> list[tuple[int, int]]:
    """Sorted, non-overlapping [start, end) character ranges of code in `text`."""
    if not text:
        return []
    if (
        "<" in text or "**" in text
    ):  # what redaction wrote (`<PERSON>`, `****1111`) reads as a word, not as a tag or operators
        text = REDACTED.sub(lambda m: "x" * len(m.group()), text)
    spans = [(m.start(), m.end()) for m in FENCE.finditer(text)]
    spans += [(m.start(), m.end()) for m in DOCSTRING.finditer(text) if not _Cover(spans).covers(m.start(), m.start())]
    fenced = _Cover(spans)
    lines, pos = [], 0
    for line in text.split("\n"):
        lines.append((pos, pos + len(line), line))
        pos += len(line) + 1
    kinds = [
        "fenced" if fenced.covers(a, b) else "code" if _is_code_line(line) else "join" if _joins(line) else "prose"
        for a, b, line in lines
    ]
    i = 0
    while i < len(lines):
        if kinds[i] != "code":
            i += 1
            continue
        lo = hi = i
        while lo > 0 and kinds[lo - 1] == "join":
            lo -= 1
        depth = _depth(lines[i][2])
        while hi + 1 < len(lines) and (kinds[hi + 1] in ("code", "join") or (depth > 0 and kinds[hi + 1] == "prose")):
            hi += 1
            depth = max(0, depth + _depth(lines[hi][2]))
        while lo < i and not lines[lo][2].strip():
            lo += 1
        while hi > i and not lines[hi][2].strip():
            hi -= 1
        spans.append((lines[lo][0], lines[hi][1]))
        for k in range(lo, hi + 1):
            kinds[k] = "fenced"
        i = hi + 1
    for (a, _b, line), kind in zip(lines, kinds):
        if kind in ("prose", "join"):
            if "`" in line:
                spans += [(a + m.start(), a + m.end()) for m in INLINE.finditer(line)]
            if MAYBE_TOKEN.search(line):  # most prose lines have no call, dotted name or underscore at all
                spans += [(a + m.start(), a + m.end()) for m in TOKENS.finditer(line) if _token(m)]
    return _merge(spans)


def mask(text: str, spans: list[tuple[int, int]]) -> str:
    """`text` with its code replaced by spaces (line breaks kept): every offset stays the same."""
    if not spans:
        return text
    out, last = [], 0
    for a, b in spans:
        out.append(text[last:a])
        out.append(re.sub(r"[^\n]", " ", text[a:b]))
        last = b
    out.append(text[last:])
    return "".join(out)


def prose(text: str) -> str:
    """`text` without its code: what a language or quality judgement should look at."""
    spans = code_spans(text)
    if not spans:
        return text
    parts, last = [], 0
    for a, b in spans:
        parts.append(text[last:a])
        last = b
    parts.append(text[last:])
    return " ".join(p.strip() for p in parts if p.strip())


class _Cover:
    def __init__(self, spans: list[tuple[int, int]]):
        self.spans = spans

    def covers(self, a: int, b: int) -> bool:
        return any(x <= a and b <= y + 1 for x, y in self.spans)


def _merge(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[list[int]] = []
    for a, b in sorted(spans):
        if out and a <= out[-1][1]:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return [(a, b) for a, b in out]
