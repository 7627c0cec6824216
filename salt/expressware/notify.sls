{#- The Network Manager's notification script on the Cluster Management Node (frontend).

    salt <frontend> state.apply expressware.notify
    salt <frontend> state.apply expressware.notify test=True

    The Network Manager runs the script when the interconnect state changes; the
    script fires expressware/cluster/state on the master's bus with the state and the
    node (see files/cluster-notify.sh), which the rolling runner's health gate
    requires to be UP (or what the operator allows) before it disrupts a node.

    Pillar expressware:notify (all optional; see salt/pillar.example): where the
    script and its configuration go, how the Network Manager hands over the state
    (state_from: arg:N or env:NAME; node_from: arg:N, env:NAME or none), and how the
    Network Manager learns the script (register). The vendor documents that a
    notification script exists, not how it is registered nor how it gets the state:
    without ``register`` the state says so and registration is left to the operator
    (dis_admin, or the Network Manager's configuration).
-#}
{%- set notify = salt['pillar.get']('expressware:notify', {}) %}
{%- set script = notify.get('script', '/usr/local/sbin/expressware-cluster-notify') %}
{%- set config = notify.get('config', '/etc/expressware/cluster-notify.conf') %}
{%- set settings = {
      'state_from': notify.get('state_from', 'arg:1'),
      'node_from': notify.get('node_from', 'arg:2'),
      'salt_call': notify.get('salt_call', 'salt-call'),
      'salt_config_dir': notify.get('salt_config_dir', ''),
      'state_dir': notify.get('state_dir', '/var/lib/expressware/cluster-notify'),
    } %}
{%- set bad = [] %}
{%- for key, value in settings.items() %}
{%-   if value is not string or '\n' in value or '\r' in value %}{% do bad.append(key) %}{% endif %}
{%- endfor %}
{%- for key, value in {'script': script, 'config': config}.items() %}
{%-   if value is not string or not value.startswith('/') %}{% do bad.append(key) %}{% endif %}
{%- endfor %}
{%- if bad %}
expressware-notify-bad-pillar:
  test.fail_without_changes:
    - comment: >-
        pillar expressware:notify: {{ bad | join(', ') }} must be text on one line
        (script, config: absolute paths); nothing was changed
{%- else %}
expressware-notify-script:
  file.managed:
    - name: {{ script | json }}
    - source: salt://expressware/files/cluster-notify.sh
    - mode: '0755'
    - makedirs: True

expressware-notify-config:
  file.managed:
    - name: {{ config | json }}
    - mode: '0644'
    - makedirs: True
    - contents: |
        # Written by Salt (expressware.notify); read by {{ script }}.
{%- for key, value in settings.items() %}
        {{ key }} = {{ value }}
{%- endfor %}

expressware-notify-state-dir:
  file.directory:
    - name: {{ settings.state_dir | json }}
    - mode: '0755'
    - makedirs: True

{%- set register = notify.get('register') %}
{%- if register %}
{%-   set line = register.get('line', '') | replace('{script}', script) %}
expressware-notify-register:
  file.replace:
    - name: {{ register.get('file', '/etc/dis/networkmanager.conf') | json }}
    - pattern: {{ register.get('pattern', '') | json }}
    - repl: {{ line | json }}
    - append_if_not_found: True
    - require:
      - file: expressware-notify-script
      - file: expressware-notify-config
{%-   if register.get('restart') %}

expressware-notify-network-manager:
  service.running:
    - name: {{ register.get('service', 'dis_networkmgr') | json }}
    - watch:
      - file: expressware-notify-register
{%-   endif %}
{%- else %}

expressware-notify-register:
  test.succeed_without_changes:
    - comment: >-
        register {{ script }} as the Network Manager's notification script
        (dis_admin or its configuration), or set pillar expressware:notify:register
{%- endif %}
{%- endif %}
