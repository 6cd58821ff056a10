# Probe of a host's python, run there with the python to be used: prints one JSON line.
# argv[1]: JSON {"dists": [distribution names whose installed versions and unmet requirements to report]}.
import importlib.metadata as md
import json
import re
import sys
import sysconfig


def norm(name):
    return re.sub(r"[-_.]+", "-", name).lower()


try:
    from packaging.requirements import Requirement
except ImportError:
    try:
        from pip._vendor.packaging.requirements import Requirement
    except ImportError:
        Requirement = None

wanted = json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}
installed = {}
for dist in md.distributions():
    name = dist.metadata["Name"]
    if name and norm(name) not in installed:
        installed[norm(name)] = dist.version
paths = sysconfig.get_paths()
answer = {
    "py": list(sys.version_info[:2]),
    "executable": sys.executable,
    "prefix": sys.prefix,
    "base_prefix": sys.base_prefix,
    "venv": sys.prefix != sys.base_prefix,
    "site": sorted({paths["purelib"], paths["platlib"]}),
    "installed": installed,
    "missing": [],
    "packaging": Requirement is not None,
}
shipped = {norm(n) for n in wanted.get("dists", [])}
for name in sorted(shipped):
    if name not in installed or Requirement is None:
        continue
    for line in md.requires(name) or []:
        req = Requirement(line)
        if norm(req.name) in shipped:
            continue
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue
        found = installed.get(norm(req.name))
        if found is None or (req.specifier and not req.specifier.contains(found, prereleases=True)):
            answer["missing"].append(str(req))
print(json.dumps(answer))
