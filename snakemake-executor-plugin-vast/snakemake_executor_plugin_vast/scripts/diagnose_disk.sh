# One line about the free space of the folder given as argv 1 (or its nearest existing parent): "<use%> <free KiB>".
d="$1"
while [ ! -d "$d" ] && [ "$d" != "/" ]; do d=$(dirname "$d"); done
df -Pk "$d" 2>/dev/null | awk 'NR == 2 { print $5, $4 }'
