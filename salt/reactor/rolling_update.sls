{#- Start a rolling update when one is requested on the event bus.

    Master configuration:

        reactor:
          - 'expressware/update/request':
            - salt://reactor/rolling_update.sls

    Request (from the master; from a minion use event.send with the same data):

        salt-run event.send expressware/update/request \
            '{"tgt": "G@cluster:db1", "tgt_type": "compound", "version": "5.26.0"}'

    The runner refuses a request while another rollout (or a node's state run)
    holds the cluster's update lease, and fires expressware/rolling/refused.
-#}
{%- set request = data['data'] if data.get('data') is mapping else data %}
{%- set version = request.get('version') | string %}
expressware_rolling_update:
  runner.rolling.update:
    - args:
      - tgt: {{ request.get('tgt') | json }}
      - tgt_type: {{ request.get('tgt_type', 'glob') | json }}
      - version: {{ version | json }}
      - sia: {{ request.get('sia', 'salt://expressware/Dolphin_eXpressWare-' ~ version ~ '.sh') | json }}
      - applications: {{ request.get('applications', []) | json }}
      - reboot: {{ request.get('reboot', False) | json }}
      - node_timeout: {{ request.get('node_timeout', 1800) | json }}
      - cluster: {{ request.get('cluster', 'default') | json }}
      - progress: false
