#!/usr/bin/env python3
"""Checks every `#include "dir/..."` under src/ and apps/ against the layer
table in docs/ARCHITECTURE.md (the ```layers block). Exits 1 and names each
include the table does not allow.

A file's layer is the longest table key that prefixes its path under src/
(src/backends/python/x.cc is `backends/python`, which also gets what
`backends` may include); apps/ is the layer `apps`. An include names a layer
by its first path component (`server/http_types.h` -> `server`); includes of
files outside the project's folders (generated protobuf headers, third-party
headers in quotes) are not checked.

usage: check_layers.py [--root DIR]
"""
import argparse
import pathlib
import re
import sys

INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def read_table(architecture: pathlib.Path) -> dict[str, set[str]]:
    text = architecture.read_text()
    block = re.search(r"```layers\n(.*?)```", text, re.S)
    if block is None:
        raise SystemExit(f"{architecture}: no ```layers block")
    table = {}
    for n, line in enumerate(block.group(1).splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        layer, sep, allowed = line.partition(":")
        if not sep:
            raise SystemExit(f"{architecture}: layers line {n}: expected 'from: to, to'")
        targets = {a.strip() for a in allowed.split(",") if a.strip() not in ("", "-")}
        table[layer.strip()] = targets
    return table


def layer_of(relative: str, table: dict[str, set[str]]) -> list[str]:
    """The table keys that apply to a file, most specific first."""
    if relative.startswith("apps/"):
        return ["apps"]
    path = relative.removeprefix("src/")
    keys = [k for k in table if path == k or path.startswith(k + "/")]
    return sorted(keys, key=len, reverse=True)


def allowed(include: str, layers: list[str], table: dict[str, set[str]]) -> bool:
    # The include's own layer: the most specific table key its folder is in
    # (controlplane/local/x.h is `controlplane/local`, not `controlplane`).
    folder = include.rsplit("/", 1)[0] if "/" in include else ""
    keys = [k for k in table if folder == k or folder.startswith(k + "/")]
    target = max(keys, key=len) if keys else include.split("/", 1)[0]
    if target == layers[0] or layers[0].startswith(target + "/"):
        return True  # within its own layer, or a sub-layer using its parent
    for layer in layers:
        rules = table[layer]
        if "*" in rules or include in rules or target in rules:
            return True
    return False


def check(root: pathlib.Path) -> list[str]:
    table = read_table(root / "docs" / "ARCHITECTURE.md")
    folders = {p.name for p in (root / "src").iterdir() if p.is_dir()}
    problems = []
    for base in ("src", "apps"):
        for f in sorted((root / base).rglob("*")):
            if f.suffix not in (".h", ".cc") or not f.is_file():
                continue
            relative = f.relative_to(root).as_posix()
            layers = layer_of(relative, table)
            text = f.read_text(errors="replace")
            for m in INCLUDE.finditer(text):
                include = m.group(1)
                if include.split("/", 1)[0] not in folders:
                    continue
                if not layers:
                    problems.append(f"{relative}: its folder has no entry in the layer table")
                    break
                if not allowed(include, layers, table):
                    line = text.count("\n", 0, m.start()) + 1
                    problems.append(
                        f'{relative}:{line}: includes "{include}", but {layers[0]} may include '
                        f"only {', '.join(sorted(table[layers[0]])) or 'nothing'}"
                    )
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=pathlib.Path(__file__).resolve().parent.parent,
                        type=pathlib.Path)
    args = parser.parse_args()
    problems = check(args.root)
    for p in problems:
        print(p, file=sys.stderr)
    if problems:
        print(f"check_layers: {len(problems)} include(s) against docs/ARCHITECTURE.md",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
