#!/bin/sh
# Rendered by openmrs-cluster; the balancer's entrypoint starts it as www-data. Apache's own health checks
# wait for an answer as long as a request may (mod_proxy_hcheck takes the member's timeout), so a node that
# takes connections but never answers (a hung JVM, or a hung machine whose kernel still completes
# handshakes) would keep getting requests for minutes. This asks each member's heartbeat with a timeout of
# its own and, after {{ heartbeat.fails }} checks in a row without an answer within {{ heartbeat.timeout_seconds }} s, marks the member
# failed in the balancer-manager (HcFl, as a failed Apache check does); Apache's checks admit it again
# after {{ heartbeat.passes }} passes.
# It fails open, as an ALB does when no target is healthy: while no member answers it at all, it marks none.
# Every member silent at once is more often this balancer starved of CPU or cut from the network than every
# node hung together, and marking them all would turn a slow moment into an outage (a 503 for every
# request). Apache's own checks still take out a member that refuses connections or answers with an error.
MANAGER={{ manager_url }}

mark_failed() {
  # Each balancer has a nonce of its own, in the links to its members (b=<balancer>&amp;w=…&amp;nonce=…).
  nonce=$({{ manager_curl }} -s --max-time 5 "$MANAGER" | grep -o "b=$2&amp;w=[^\"]*nonce=[0-9a-f-]*" | head -n 1 \
    | sed 's/.*nonce=//')
  # The manager ignores changes whose Referer is not itself (its guard against cross-site requests).
  {{ manager_curl }} -s -o /dev/null --max-time 5 -H "Referer: $MANAGER" --data-urlencode "b=$2" \
    --data-urlencode "w=$1" -d w_status_C=1 -d "nonce=$nonce" "$MANAGER"
}

# One file per member, in a directory per balancer (the nodes', the static servers'), present while its
# last check got an answer.
ANSWERING=$(mktemp -d)

watch_member() {
  unanswered=0
  marked=no
  mkdir -p "$ANSWERING/$3"
  answering="$ANSWERING/$3/$4"
  while :; do
    started=$(date +%s)
    # Any HTTP answer counts, even an error: a node that answers is Apache's checks' to judge.
    if curl -s -o /dev/null --cacert {{ authority_file }} --max-time {{ heartbeat.timeout_seconds }} "$1$2"; then
      unanswered=0
      marked=no
      touch "$answering"
    else
      unanswered=$((unanswered + 1))
      rm -f "$answering"
      if [ "$unanswered" -ge {{ heartbeat.fails }} ] && [ "$marked" = no ]; then
        if [ -n "$(ls -A "$ANSWERING/$3")" ]; then
          echo "heartbeat-watch: $1 gave no answer within {{ heartbeat.timeout_seconds }} s $unanswered times in a row: marked failed" >&2
          mark_failed "$1" "$3"
          marked=yes
        elif [ "$unanswered" -eq {{ heartbeat.fails }} ]; then
          echo "heartbeat-watch: $1 gave no answer within {{ heartbeat.timeout_seconds }} s {{ heartbeat.fails }} times in a row, and no member answers: left in (fails open)" >&2
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
