# Kill the process groups of the given jobs (SIGTERM, then SIGKILL after 1 s); $JOBS: the run's jobs folder.
for k in "$@"; do
  d="$JOBS/$k"
  if [ -f "$d/pid" ] && [ ! -f "$d/exit_code" ]; then kill -s TERM -- "-$(cat "$d/pid")" 2>/dev/null; fi
done
sleep 1
for k in "$@"; do
  d="$JOBS/$k"
  if [ -f "$d/pid" ] && [ ! -f "$d/exit_code" ]; then kill -s KILL -- "-$(cat "$d/pid")" 2>/dev/null; fi
done
true
