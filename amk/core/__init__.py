"""amk's core: domain types, records and migrations, hookspecs, the plugin manager, config, errors."""
