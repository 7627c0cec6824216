{#- Ensure the eXpressWare version kept in pillar (see salt/pillar.example).

    salt '*' state.apply expressware            # or as part of a highstate
    salt '*' state.apply expressware test=True

    The state takes the cluster's update lease from the master before it disrupts
    a node, so applying this on every node at once still updates one node at a time.
-#}
{%- set ew = salt['pillar.get']('expressware', {}) %}
{%- if ew.get('version') %}
{%- set version = ew['version'] | string %}
expressware-{{ version }}:
  expressware.installed:
    - name: {{ version | json }}
    - sia: {{ ew.get('sia', 'salt://expressware/Dolphin_eXpressWare-' ~ version ~ '.sh') | json }}
    - applications: {{ ew.get('applications', []) | json }}
    - reboot: {{ ew.get('reboot', False) | json }}
    - enforce: {{ ew.get('enforce', False) | json }}
    - timeout: {{ ew.get('timeout', 600) | json }}
    - lease_wait: {{ ew.get('lease_wait', 1800) | json }}
{%- if ew.get('use_rpms') %}
    - use_rpms: {{ ew['use_rpms'] | json }}
{%- endif %}
{%- if ew.get('compat') %}
    - compat: {{ ew['compat'] | json }}
{%- endif %}
{%- if ew.get('cluster') %}
    - cluster: {{ ew['cluster'] | json }}
{%- endif %}
{%- else %}
expressware-version-not-set:
  test.show_notification:
    - text: "pillar expressware:version is not set; nothing to do (see salt/pillar.example)"
{%- endif %}
