"""Run one ``density-engine`` command and report the third-party distributions it imports
(``python tests/workflow/import_trace.py OUT.json ARGS...``): ``direct``, those imported by density-engine's own
modules, and ``loaded``, every distribution with a module loaded while the command ran (including what the packages
import in turn, e.g. pandas that pyarrow's ``to_pandas`` loads).

Used by test_software.py to check each rule's conda environment (workflow/envs/) against what its command imports.
"""

from __future__ import annotations

import builtins
import json
import sys
from importlib import metadata

_recorded: set[str] = set()
_original_import = builtins.__import__


def _recording_import(name, globals=None, locals=None, fromlist=(), level=0):
    importer = (globals or {}).get("__name__", "")
    if level == 0 and importer.startswith("density_engine"):
        _recorded.add(name.split(".")[0])
    return _original_import(name, globals, locals, fromlist, level)


def distributions(top_level: set[str]) -> list[str]:
    """Distributions (as installed here) providing these top-level modules; stdlib and density_engine excluded."""
    providers = metadata.packages_distributions()
    found = set()
    for top in top_level:
        if top in sys.stdlib_module_names or top == "density_engine" or top.startswith("_"):
            continue
        found.update(providers.get(top, []))
    return sorted(found)


def main(out_path: str, args: list[str]) -> int:
    """Run ``density-engine ARGS`` in this process; write what it imported to ``out_path`` whether or not it failed (a
    failing command, e.g. publishing without a reachable Hub, still shows what it imported up to the failure)."""
    before = {name.split(".")[0] for name in sys.modules}
    builtins.__import__ = _recording_import
    status = 1
    try:
        from density_engine.cli import main as cli

        cli.main(args, prog_name="density-engine", standalone_mode=False)
        status = 0
    except Exception as exc:
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
    finally:
        builtins.__import__ = _original_import
        loaded = {name.split(".")[0] for name in list(sys.modules)} - before
        with open(out_path, "w", encoding="utf-8") as handle:
            json.dump({"args": args, "direct": distributions(_recorded), "loaded": distributions(loaded)}, handle)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2:]))
