# Find the python to use on a host and probe it; the probe script (probe.py) comes on stdin.
# argv: 1 = --vast-remote-python (a name or a path), 2 = the run's venv folder, 3 = JSON argument of probe.py.
# Non-interactive SSH sessions do not get the image's ENV PATH (e.g. /venv/main/bin, /opt/conda/bin): the PATH of the
# container's init (PID 1) and of a login shell are searched first.
image=$(tr '\0' '\n' < /proc/1/environ 2>/dev/null | sed -n 's/^PATH=//p' | head -n 1)
login=$(timeout 20 bash -lc 'printf %s "$PATH"' < /dev/null 2>/dev/null)
export PATH="${image:+$image:}${login:+$login:}$PATH"
if [ -x "$2/bin/python" ]; then
  echo "PYTHON $2/bin/python venv"
  exec "$2/bin/python" - "$3"
fi
py=$(command -v "$1" 2>/dev/null)
if [ -z "$py" ]; then
  echo "NOPYTHON $PATH"
  exit 0
fi
echo "PYTHON $py image"
exec "$py" - "$3"
