#!/bin/sh
# Notification script of the Dolphin Network Manager (Cluster Management Node).
#
# The Network Manager runs it when the interconnect state changes (UP, REDUCED,
# DEGRADED, FAILED, UNSTABLE). It tells Salt's master with
#
#     salt-call event.send expressware/cluster/state '{"state": ..., "node": ..., "seq": N, "time": T}'
#
# (an argument list; nothing from the Network Manager reaches a shell), and keeps
# the last report in <state_dir>/state.json for a direct read. ``seq`` counts the
# reports, ``time`` is this machine's clock (epoch seconds): the master orders
# reports that overtake each other by them.
#
# How the Network Manager hands over the state is not documented in detail, so it
# is configured in /etc/expressware/cluster-notify.conf (or the file named by
# $EXPRESSWARE_NOTIFY_CONF), ``key = value`` lines:
#
#     state_from = arg:1          # the Nth argument, or env:NAME (an environment variable)
#     node_from = arg:2           # the node the change concerns: arg:N, env:NAME or none
#     salt_call = salt-call       # the salt-call executable
#     salt_config_dir =           # salt-call --config-dir (empty: salt-call's default)
#     state_dir = /var/lib/expressware/cluster-notify
#
# The state is accepted in any letter case with surrounding blanks; anything else
# is refused (exit 2, no event). Exit 1 when the event could not be sent.

PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:$PATH
conf=${EXPRESSWARE_NOTIFY_CONF:-/etc/expressware/cluster-notify.conf}
me=expressware-cluster-notify

state_from=arg:1
node_from=arg:2
salt_call=salt-call
salt_config_dir=
state_dir=/var/lib/expressware/cluster-notify

fail() {
    code=$1
    shift
    echo "$me: $*" >&2
    exit "$code"
}

trim() {
    printf '%s' "$1" | sed -e 's/^[[:space:]]*//' -e 's/[[:space:]]*$//'
}

if [ -f "$conf" ]; then
    while IFS= read -r line || [ -n "$line" ]; do
        line=$(trim "$line")
        case $line in
            ''|'#'*) continue ;;
            *=*) ;;
            *) fail 2 "$conf: not a 'key = value' line: $line" ;;
        esac
        key=$(trim "${line%%=*}")
        value=$(trim "${line#*=}")
        case $key in
            state_from) state_from=$value ;;
            node_from) node_from=$value ;;
            salt_call) salt_call=$value ;;
            salt_config_dir) salt_config_dir=$value ;;
            state_dir) state_dir=$value ;;
            *) fail 2 "$conf: unknown key '$key' (known: state_from, node_from, salt_call," \
                      "salt_config_dir, state_dir)" ;;
        esac
    done < "$conf"
fi

# take SOURCE ARGS...: the value SOURCE (arg:N, env:NAME or none) names.
take() {
    source=$1
    shift
    case $source in
        none) printf '' ;;
        arg:*)
            n=${source#arg:}
            case $n in ''|*[!0-9]*|0) fail 2 "$conf: '$source' is not arg:N with N >= 1" ;; esac
            i=0
            for a in "$@"; do
                i=$((i + 1))
                if [ "$i" -eq "$n" ]; then
                    printf '%s' "$a"
                    return 0
                fi
            done ;;
        env:*)
            name=${source#env:}
            case $name in
                ''|[0-9]*|*[!A-Za-z0-9_]*) fail 2 "$conf: '$source' is not env:NAME with a variable name" ;;
            esac
            # The name is checked above: letters, digits and _ only.
            eval "printf '%s' \"\${$name-}\"" ;;
        *) fail 2 "$conf: '$source' must be arg:N, env:NAME or none" ;;
    esac
}

raw_state=$(take "$state_from" "$@") || exit 2
raw_node=$(take "$node_from" "$@") || exit 2

state=$(trim "$raw_state" | tr '[:lower:]' '[:upper:]')
case $state in
    UP|REDUCED|DEGRADED|FAILED|UNSTABLE) ;;
    *) fail 2 "not a cluster state (UP, REDUCED, DEGRADED, FAILED, UNSTABLE) from $state_from: '$raw_state'" ;;
esac

node=$(trim "$raw_node")
case $node in
    *[!A-Za-z0-9._-]*) fail 2 "not a node name from $node_from: '$raw_node'" ;;
esac
if [ -n "$node" ]; then
    node_json="\"$node\""
else
    node_json=null
fi

mkdir -p "$state_dir" || fail 1 "cannot create $state_dir"
# One report at a time: the counter and the state file change together.
lock=$state_dir/lock
tries=0
until mkdir "$lock" 2>/dev/null; do
    tries=$((tries + 1))
    if [ "$tries" -ge 100 ]; then
        rmdir "$lock" 2>/dev/null  # left by a run that was killed
        tries=0
    fi
    sleep 0.05 2>/dev/null || sleep 1
done
trap 'rmdir "$lock" 2>/dev/null' EXIT
seq=$(cat "$state_dir/seq" 2>/dev/null)
case $seq in ''|*[!0-9]*) seq=0 ;; esac
seq=$((seq + 1))
now=$(date +%s)
payload="{\"state\": \"$state\", \"node\": $node_json, \"seq\": $seq, \"time\": $now}"
printf '%s\n' "$seq" > "$state_dir/seq.tmp" && mv -f "$state_dir/seq.tmp" "$state_dir/seq"
printf '%s\n' "$payload" > "$state_dir/state.json.tmp" && mv -f "$state_dir/state.json.tmp" "$state_dir/state.json"
rmdir "$lock" 2>/dev/null
trap - EXIT

set -- "$salt_call"
if [ -n "$salt_config_dir" ]; then
    set -- "$@" --config-dir "$salt_config_dir"
fi
set -- "$@" --out=json --log-level=warning event.send expressware/cluster/state "$payload"
out=$("$@") || fail 1 "salt-call event.send failed: $out"
case $out in
    *'"local": true'*) exit 0 ;;
    *) fail 1 "salt-call event.send did not send the event: $out" ;;
esac
