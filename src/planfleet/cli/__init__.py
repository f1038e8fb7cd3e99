"""The command line: argument parsing, exit codes, the JSON envelope and the terminal view.

Flags become typed option objects here (``runflags``) and nowhere below; ``commands/`` holds
one module per subcommand. Entry point: ``planfleet.cli.app:main_entry``.
"""
