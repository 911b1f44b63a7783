#!/bin/sh
# Rendered by openmrs-cluster; the balancer's entrypoint starts it as www-data. Apache's own health checks
# wait for an answer as long as a request may (mod_proxy_hcheck takes the member's timeout), so a node that
# takes connections but never answers (a hung JVM, or a hung machine whose kernel still completes
# handshakes) would keep getting requests for minutes. This asks each member's heartbeat with a timeout of
# its own and, after {{ heartbeat.fails }} checks in a row without an answer within {{ heartbeat.timeout_seconds }} s, marks the member
# failed in the balancer-manager (HcFl, as a failed Apache check does); Apache's checks admit it again
# after {{ heartbeat.passes }} passes.
# It fails open, as an ALB does when no target is healthy: it never marks the last member its balancer has
# in service. Members that answer slowly one after another are more often this balancer, or the machine
# under it, starved of CPU than nodes hung together, and marking each in turn would turn a slow moment into
# an outage (a 503 for every request). Apache's own checks still take out a member that refuses connections
# or answers with an error.
MANAGER={{ manager_url }}

# The routes of each balancer's members.
routes_of() {
  case "$1" in
{% for balancer in members | map(attribute="balancer") | unique %}
    {{ balancer }}) echo "{{ members | selectattr("balancer", "equalto", balancer) | map(attribute="route") | join(" ") }}" ;;
{% endfor %}
  esac
}

# Whether the manager's page ($1) shows a member of balancer $2 other than route $3 in service (Init Ok).
another_in_service() {
  for route in $(routes_of "$2"); do
    [ "$route" != "$3" ] || continue
    status=$(printf '%s' "$1" | grep -o "<td>$route</td><td>[^<]*</td><td>[^<]*</td><td>[^<]*</td><td>[^<]*</td>" \
      | head -n 1 | sed 's/.*<td>\([^<]*\)<\/td>$/\1/')
    # shellcheck disable=SC2086 # the status's words, without Apache's padding
    [ "$(echo $status)" != "Init Ok" ] || return 0
  done
  return 1
}

# One member's look at the others and its change at a time: members that go silent together must not each
# see the others still in service and all be marked.
LOCK=$(mktemp)

# Marks member $1 (route $3) of balancer $2 failed, unless it is the last one in service; fails if it did not.
mark_failed() {
  (
    flock 9
    page=$({{ manager_curl }} -s --max-time 5 "$MANAGER")
    another_in_service "$page" "$2" "$3" || exit 1
    # Each balancer has a nonce of its own, in the links to its members (b=<balancer>&amp;w=…&amp;nonce=…).
    nonce=$(printf '%s' "$page" | grep -o "b=$2&amp;w=[^\"]*nonce=[0-9a-f-]*" | head -n 1 | sed 's/.*nonce=//')
    # The manager ignores changes whose Referer is not itself (its guard against cross-site requests).
    {{ manager_curl }} -s -o /dev/null --max-time 5 -H "Referer: $MANAGER" --data-urlencode "b=$2" \
      --data-urlencode "w=$1" -d w_status_C=1 -d "nonce=$nonce" "$MANAGER"
  ) 9>"$LOCK"
}

watch_member() {
  unanswered=0
  marked=no
  while :; do
    started=$(date +%s)
    # Any HTTP answer counts, even an error: a node that answers is Apache's checks' to judge.
    if curl -s -o /dev/null --cacert {{ authority_file }} --max-time {{ heartbeat.timeout_seconds }} "$1$2"; then
      unanswered=0
      marked=no
    else
      unanswered=$((unanswered + 1))
      if [ "$unanswered" -ge {{ heartbeat.fails }} ] && [ "$marked" = no ]; then
        if mark_failed "$1" "$3" "$4"; then
          echo "heartbeat-watch: $1 gave no answer within {{ heartbeat.timeout_seconds }} s $unanswered times in a row: marked failed" >&2
          marked=yes
        elif [ "$unanswered" -eq {{ heartbeat.fails }} ]; then
          echo "heartbeat-watch: $1 gave no answer within {{ heartbeat.timeout_seconds }} s {{ heartbeat.fails }} times in a row, and is the last member in service: left in (fails open)" >&2
        fi
      fi
    fi
    elapsed=$(($(date +%s) - started))
    [ "$elapsed" -ge {{ heartbeat.interval_seconds }} ] || sleep $(({{ heartbeat.interval_seconds }} - elapsed))
  done
}

{% for member in members %}
watch_member https://{{ member.host }}:{{ member.port }} {{ member.health_path }} {{ member.balancer }} {{ member.route }} &
{% endfor %}
wait
