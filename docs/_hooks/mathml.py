"""mkdocs hook: the docs' LaTeX becomes MathML when the site is built.

``pymdownx.arithmatex`` (generic mode) finds ``$...$`` and ``$$...$$`` outside code and
wraps them; this hook converts each one with latex2mathml (the ``docs`` extra installs
both). Browsers draw MathML themselves: the site needs no JavaScript and no network, and a
formula latex2mathml cannot convert fails the build, naming the page.
"""

from __future__ import annotations

import html
import re

from latex2mathml.converter import convert

# arithmatex's generic output: the TeX is HTML-escaped inside \( \) or \[ \]
_BLOCK = re.compile(r'<div class="arithmatex">\s*\\\[(.*?)\\\]\s*</div>', re.S)
_INLINE = re.compile(r'<span class="arithmatex">\s*\\\((.*?)\\\)\s*</span>', re.S)


def to_mathml(tex: str, display: bool = False) -> str:
    """Local. MathML for one formula (``display``: a block of its own)."""
    out = convert(html.unescape(tex).strip(), display="block" if display else "inline")
    # latex2mathml prints a command it does not know as text ("\\foo"): refuse it
    unknown = re.search(r">(\\[A-Za-z]+)", out)
    if unknown:
        raise ValueError(f"unknown command {unknown.group(1)}")
    return out


def _convert_all(text: str, where: str) -> str:
    def sub(display):
        def one(m):
            try:
                return to_mathml(m.group(1), display)
            except Exception as e:  # latex2mathml raises several kinds
                raise ValueError(f"{where}: cannot render the formula {m.group(1)!r}: {e}") from e
        return one
    text = _BLOCK.sub(sub(True), text)
    text = _INLINE.sub(sub(False), text)
    if 'class="arithmatex"' in text:
        raise ValueError(f"{where}: a formula was left unconverted")
    # "$$ x $$" with text after it on the line is neither block nor inline math for
    # arithmatex: it would stay TeX source; code may hold "$$" (a shell's PID)
    prose = re.sub(r"<(pre|code)\b.*?</\1>", "", text, flags=re.S)
    if "$$" in prose:
        i = prose.index("$$")
        raise ValueError(f"{where}: unrendered math near {prose[max(0, i - 40):i + 40]!r}: put "
                         f"$$...$$ on lines of its own, or use $...$ inside a sentence")
    return text


def on_page_content(content, page, config, files):
    return _convert_all(content, page.file.src_path)
