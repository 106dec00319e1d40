"""Built-in provider plugins: one module (or folder) per provider, each exporting ``Plugin``.

The registry (``proxy.plugin.registry``) loads ``plugins.<name>.Plugin`` for a built-in name, an entry
point of the ``efflux_gateway.plugins`` group for a third-party one, or ``package.module:Class`` from YAML.
"""
