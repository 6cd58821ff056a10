# Create the run's venv from the image's python; chain the image environment's site-packages when that python is a
# venv itself (its packages, e.g. torch, stay visible; an install of ours only shadows what a requirement demands).
# argv: 1 = image python, 2 = venv folder, then the image environment's site-packages folders to chain (may be none).
set -e
py="$1"; venv="$2"; shift 2
[ -x "$venv/bin/python" ] || "$py" -m venv --system-site-packages --without-pip "$venv"
site=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
: > "$site/_vast_image_env.pth.tmp"
# site.addsitedir also processes the .pth files of the chained folders, as the image's own python does
for dir in "$@"; do printf 'import site; site.addsitedir(%s)\n' "$("$venv/bin/python" -c 'import sys; print(repr(sys.argv[1]))' "$dir")" >> "$site/_vast_image_env.pth.tmp"; done
mv "$site/_vast_image_env.pth.tmp" "$site/_vast_image_env.pth"
echo "VENV $venv $site"
