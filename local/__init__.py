"""The one-machine runtime: embedded services, the ADF runner, the dbutils shim, the CLI."""
