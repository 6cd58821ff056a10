# Install pure-Python wheels into this python's environment without pip (no network, no dependency resolution):
# unzip each wheel into purelib, replacing an older copy of the same packages and dist-info, write console scripts.
# argv[1:]: wheel files.
import configparser
import glob
import os
import shutil
import sys
import sysconfig
import zipfile

paths = sysconfig.get_paths()
purelib, scripts = paths["purelib"], paths["scripts"]
os.makedirs(purelib, exist_ok=True)
for wheel in sys.argv[1:]:
    with zipfile.ZipFile(wheel) as zf:
        tops = {name.split("/")[0] for name in zf.namelist()}
        info = next(t for t in tops if t.endswith(".dist-info"))
        for top in tops:
            if top.endswith(".dist-info"):
                for old in glob.glob(os.path.join(purelib, top.split("-")[0] + "-*.dist-info")):
                    shutil.rmtree(old, ignore_errors=True)
            else:
                shutil.rmtree(os.path.join(purelib, top), ignore_errors=True)
        zf.extractall(purelib)
    with open(os.path.join(purelib, info, "INSTALLER"), "w") as handle:
        handle.write("snakemake-executor-plugin-vast\n")
    entry_points = configparser.ConfigParser()
    entry_points.read(os.path.join(purelib, info, "entry_points.txt"))
    if entry_points.has_section("console_scripts"):
        os.makedirs(scripts, exist_ok=True)
        for name, target in entry_points.items("console_scripts"):
            module, attr = target.split(":")
            path = os.path.join(scripts, name)
            with open(path + ".tmp", "w") as handle:
                handle.write(f"#!{sys.executable}\nimport sys\nfrom {module} import {attr}\nsys.exit({attr}())\n")
            os.chmod(path + ".tmp", 0o755)
            os.replace(path + ".tmp", path)
    print("installed", info)
