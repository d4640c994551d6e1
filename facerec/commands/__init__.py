"""One module per `facerec` subcommand."""
