# Create the run's venv from the image's python; chain the image environment's site-packages when that python is a
# venv itself (its packages, e.g. torch, stay visible and are never shadowed by an install of ours unless needed).
# argv: 1 = image python, 2 = venv folder, then the image environment's site-packages folders to chain (may be none).
set -e
py="$1"; venv="$2"; shift 2
[ -x "$venv/bin/python" ] || "$py" -m venv --system-site-packages --without-pip "$venv"
site=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
: > "$site/_vast_image_env.pth.tmp"
for dir in "$@"; do echo "$dir" >> "$site/_vast_image_env.pth.tmp"; done
mv "$site/_vast_image_env.pth.tmp" "$site/_vast_image_env.pth"
echo "VENV $venv $site"
