"""Command-line tools for operators and contributors, run as `python -m tools.<name>`."""
