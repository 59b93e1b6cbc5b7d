"""The hook markers, and nothing else: plugins import these as ``amk.hookimpl``."""

import pluggy

PROJECT_NAME = "amk"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)
