# Status of this run's jobs on one host; arguments: job keys; $JOBS: the run's jobs folder.
# One line per key: "<key> exit <code>" | "<key> running" | "<key> starting" | "<key> lost".
for k in "$@"; do
  d="$JOBS/$k"
  if [ -f "$d/exit_code" ]; then echo "$k exit $(cat "$d/exit_code")"; continue; fi
  if [ -f "$d/pid" ]; then
    p=$(cat "$d/pid")
    if [ -d "/proc/$p" ] && ! grep -q '^State:[[:space:]]*Z' "/proc/$p/status" 2>/dev/null; then
      echo "$k running"; continue
    fi
    if [ -f "$d/exit_code" ]; then echo "$k exit $(cat "$d/exit_code")"; else echo "$k lost"; fi
  else
    echo "$k starting"
  fi
done
