"""The command line: argument parsing, exit codes, the JSON envelope and the terminal view.

Flags become typed, frozen option objects here and nowhere below: ``runflags`` reads a
run's flags once into ``runopts`` objects, ``savedflags`` keeps them for `resume`;
``commands/`` holds one module per subcommand. Entry point: ``planfleet.cli.app:main_entry``.
"""
