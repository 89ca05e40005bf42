"""Print the requirements of crackseg's core plus the given extras, resolving ``crackseg[...]`` self-references.

The images install these from pyproject.toml alone, in a layer that survives code changes, then install the
project itself with ``--no-deps``.  usage: python3 requirements.py pyproject.toml serve [ui ...]
"""

from __future__ import annotations

import re
import sys
import tomllib


def requirements(pyproject: dict, extras: list[str]) -> list[str]:
    project = pyproject["project"]
    name = project["name"]
    self_ref = re.compile(rf"^{re.escape(name)}\[(?P<extras>[^\]]+)\]$")
    out: list[str] = list(project.get("dependencies", []))
    seen: set[str] = set()
    todo = list(extras)
    while todo:
        extra = todo.pop()
        if extra in seen:
            continue
        seen.add(extra)
        try:
            reqs = project["optional-dependencies"][extra]
        except KeyError as e:
            raise SystemExit(f"unknown extra {extra!r} in {name}") from e
        for req in reqs:
            match = self_ref.match(req.replace(" ", ""))
            if match:
                todo.extend(x.strip() for x in match["extras"].split(","))
            else:
                out.append(req)
    return sorted(set(out))


if __name__ == "__main__":
    with open(sys.argv[1], "rb") as f:
        data = tomllib.load(f)
    print("\n".join(requirements(data, sys.argv[2:])))
