"""``python -m dfx.host``: the ``dfx`` command line."""

from dfx.host.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
