"""The one way data-derived text reaches a page: escaped for Markdown (MyST) and HTML alike.

Names an LA sends (cost items, team types, theme labels, instrument item
names, LA names, the data root's folder name) are data, never markup. In
Markdown every ASCII punctuation character becomes a numeric character
reference (``<`` -> ``&#60;``): CommonMark and MyST never read a character
reference as markup, so no tag, link, emphasis, role (``{role}`...```),
directive fence, substitution (``{{ }}``), maths (``$``) or table pipe can
come from data, and the reader sees the text as it was written. Line breaks
become spaces. In HTML attributes and text, :func:`html_text` escapes the
five HTML specials.
"""

from __future__ import annotations

import html
import string

_MARKDOWN = {ord(c): f"&#{ord(c)};" for c in string.punctuation}


def md(value) -> str:
    """``value`` as inert Markdown text (see the module docstring).

    >>> md("Venue <img src=x onerror=alert(1)>")
    'Venue &#60;img src&#61;x onerror&#61;alert&#40;1&#41;&#62;'
    >>> md("[x](javascript:alert(1)) `{eval}` {{ s }}")[:20]
    '&#91;x&#93;&#40;java'
    """
    text = " ".join(str(value).split())
    return text.translate(_MARKDOWN)


def html_text(value) -> str:
    """``value`` escaped for HTML text or a quoted attribute.

    >>> html_text('<b onclick="x">')
    '&lt;b onclick=&quot;x&quot;&gt;'
    """
    return html.escape(str(value), quote=True)
