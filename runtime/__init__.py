"""The torch runtime: `python -m runtime <plan.json> --stage <name>` executes a compiled plan."""
