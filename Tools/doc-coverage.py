#!/usr/bin/env python3
"""Lists every public symbol of the library modules that has no doc comment of its own, from the symbol graphs
`swift package dump-symbol-graph --minimum-access-level public` writes; exit 1 when there is one.

DocC builds without a warning when a symbol is undocumented, so `Tools/docs.sh` runs this too. Exempt: what the
compiler synthesizes, and implementations of the standard library's protocol requirements (`rawValue`, `==`,
`description`, ...), which the protocol documents."""
import glob
import json
import os
import sys

EXEMPT_TITLES = {
    "rawValue", "init(rawValue:)", "description", "debugDescription", "<(_:_:)", "==(_:_:)", "hash(into:)",
    "makeAsyncIterator()", "next()", "encode(to:)", "init(from:)", "distance(to:)", "advanced(by:)",
    "init(integerLiteral:)",
}


def undocumented(graph_dir, modules):
    found = []
    for module in modules:
        files = glob.glob(f"{graph_dir}/{module}.symbols.json") + glob.glob(f"{graph_dir}/{module}@*.symbols.json")
        if not files:
            sys.exit(f"doc-coverage: no symbol graph for {module} in {graph_dir}")
        for path in files:
            with open(path) as f:
                graph = json.load(f)
            for symbol in graph["symbols"]:
                if symbol.get("accessLevel") != "public" or symbol.get("docComment"):
                    continue
                if "::SYNTHESIZED::" in symbol["identifier"]["precise"] or symbol["names"]["title"] in EXEMPT_TITLES:
                    continue
                location = symbol.get("location", {})
                file = os.path.relpath(location.get("uri", "").replace("file://", ""))
                line = location.get("position", {}).get("line", -1) + 1
                found.append((f"{file}:{line}", symbol["kind"]["displayName"],
                              module + "." + ".".join(symbol["pathComponents"])))
    return sorted(found)


if __name__ == "__main__":
    graph_dir, modules = sys.argv[1], sys.argv[2:]
    missing = undocumented(graph_dir, modules)
    for where, kind, name in missing:
        print(f"{where}: {kind} {name} has no doc comment")
    print(f"doc-coverage: {len(missing)} public symbol(s) of {', '.join(modules)} without a doc comment")
    sys.exit(1 if missing else 0)
