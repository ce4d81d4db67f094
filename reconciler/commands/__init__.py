"""One module per group of commands; registered in reconciler/cli.py's COMMANDS."""
