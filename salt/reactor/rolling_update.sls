{#- Start a rolling update the master recorded as requested.

    Master configuration:

        reactor:
          - 'expressware/update/request':
            - salt://reactor/rolling_update.sls

    Request (on the master; a minion allowed by expressware:reactor:allow uses
    salt-call publish.runner rolling.request ..., see the README):

        salt-run rolling.request tgt='G@cluster:db1' tgt_type=compound version=5.26.0

    rolling.request records the request under the master's cache directory and fires
    this event with the request's id alone; nothing else in the event is trusted (a
    minion can fire this tag with any data). rolling.take_request takes the recorded
    request once and runs its rollout here, in the reactor's runner threads; an event
    without a recorded request's id (a minion's own event.send or event.fire_master,
    a replayed id) is refused with expressware/rolling/refused naming the id the
    event claims, and changes nothing. A rollout is refused the same way while
    another one (or a node's state run) holds the cluster's update lease.
-#}
expressware_rolling_take_request:
  runner.rolling.take_request:
    - args:
      - request: {{ data.get('request') | json }}
      - claimed: {{ data.get('id') | json }}
