"""Entry points of `dart-hf <command>`, TRL style: each module has `make_parser(subparsers=None)` and `main(...)`."""
