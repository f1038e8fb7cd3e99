"""One module per subcommand; each exposes register(sub, parent)."""
