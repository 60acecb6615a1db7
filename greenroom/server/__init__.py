"""The command line and serving: ``server.py``'s flags and plugins.toml (cli, config_file, tomldoc), and
waitress with its signals and draining (serve, draining). Nothing in the host core imports this package."""
