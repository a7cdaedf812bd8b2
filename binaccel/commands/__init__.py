"""The subcommands of ``binaccel``: each module adds its own to the parser with ``register(subparsers)``."""
