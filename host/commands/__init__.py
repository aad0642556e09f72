"""Sub-commands of the ``dfx`` CLI: one module per stage, each with ``register(subparsers)``."""
