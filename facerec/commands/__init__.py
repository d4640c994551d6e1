"""One module per `facerec` subcommand: each parses its flags and calls the module that does the work."""
