"""Built-in corpus stores, each a plugin registered through ``register_stores``."""
