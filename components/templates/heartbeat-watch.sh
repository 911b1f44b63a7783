#!/bin/sh
# Rendered by openmrs-cluster; the balancer's entrypoint starts it as www-data. Apache's own health checks
# wait for an answer as long as a request may (mod_proxy_hcheck takes the member's timeout), so a node that
# takes connections but never answers (a hung JVM, or a hung machine whose kernel still completes
# handshakes) would keep getting requests for minutes. This asks each member's heartbeat with a timeout of
# its own and, after {{ heartbeat.fails }} checks in a row without an answer within {{ heartbeat.timeout_seconds }} s, marks the member
# failed in the balancer-manager (HcFl, as a failed Apache check does); Apache's checks admit it again
# after {{ heartbeat.passes }} passes.
MANAGER={{ manager_url }}

mark_failed() {
  nonce=$({{ manager_curl }} -s --max-time 5 "$MANAGER" | grep -o 'nonce=[0-9a-f-]*' | head -n 1 | cut -d = -f 2)
  # The manager ignores changes whose Referer is not itself (its guard against cross-site requests).
  {{ manager_curl }} -s -o /dev/null --max-time 5 -H "Referer: $MANAGER" --data-urlencode "b={{ balancer_name }}" \
    --data-urlencode "w=$1" -d w_status_C=1 -d "nonce=$nonce" "$MANAGER"
}

watch_member() {
  unanswered=0
  while :; do
    started=$(date +%s)
    # Any HTTP answer counts, even an error: a node that answers is Apache's checks' to judge.
    if curl -s -o /dev/null --cacert {{ authority_file }} --max-time {{ heartbeat.timeout_seconds }} "$1{{ heartbeat.path }}"; then
      unanswered=0
    else
      unanswered=$((unanswered + 1))
      if [ "$unanswered" -eq {{ heartbeat.fails }} ]; then
        echo "heartbeat-watch: $1 gave no answer within {{ heartbeat.timeout_seconds }} s {{ heartbeat.fails }} times in a row: marked failed" >&2
        mark_failed "$1"
      fi
    fi
    elapsed=$(($(date +%s) - started))
    [ "$elapsed" -ge {{ heartbeat.interval_seconds }} ] || sleep $(({{ heartbeat.interval_seconds }} - elapsed))
  done
}

{% for member in members %}
watch_member https://{{ member.host }}:{{ member.port }} &
{% endfor %}
wait
