"""robustkit's built-in plugins, installed as ``robustkit_plugins`` and loaded by entry point."""
