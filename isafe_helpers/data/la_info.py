"""An LA's own description: the optional ``la.yml`` in its folder (its name for the book).

``la.yml`` holds a mapping; ``name`` (text, at most 80 characters) names the
LA wherever the book shows its code ("Northshire (LA01)"). ``code``, when
given, is the LA's code: it must be the name of the folder holding the file,
so that two LA folders swapped or misnamed are refused rather than published
under each other's code. Unknown keys are ignored with a warning. The name
is data: the book escapes it like every other data-derived string.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from isafe_helpers.data.contract import LA_CODE_PATTERN

FILENAME = "la.yml"
MAX_NAME = 80


def read_la_yml(path: Path) -> tuple[dict, list[str], list[str]]:
    """``(info, problems, warnings)`` of one ``la.yml``: info has ``name`` when given."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8-sig")) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        return {}, [f"cannot be read as YAML: {exc}"], []
    if not isinstance(raw, dict):
        return {}, ["must be a mapping, e.g. `name: Northshire`"], []
    info, problems, warnings = {}, [], []
    for key, value in raw.items():
        if key == "name":
            name = " ".join(str(value).split()) if value is not None else ""
            if not name:
                problems.append("name is blank")
            elif len(name) > MAX_NAME:
                problems.append(f"name is longer than {MAX_NAME} characters")
            else:
                info["name"] = name
        elif key == "code":
            code = "" if value is None else str(value).strip()
            if not re.fullmatch(LA_CODE_PATTERN, code):
                problems.append("code must be the LA's code (letters, digits, _ and - only), e.g. `code: LA01`")
            else:
                info["code"] = code
        else:
            warnings.append(f"unknown key {key!r} ignored")
    return info, problems, warnings


def la_names(root: Path, las: list[str]) -> dict[str, str]:
    """The names the LAs' ``la.yml`` files give (LAs without one are left out)."""
    out = {}
    for la in las:
        path = Path(root) / la / FILENAME
        if path.is_file():
            info, problems, _ = read_la_yml(path)
            if not problems and "name" in info:
                out[la] = info["name"]
    return out


def display_name(la: str, names: dict[str, str]) -> str:
    """``Northshire (LA01)``, or the code alone when the LA has no name.

    >>> display_name("LA01", {"LA01": "Northshire"}), display_name("LA02", {})
    ('Northshire (LA01)', 'LA02')
    """
    return f"{names[la]} ({la})" if la in names else la
