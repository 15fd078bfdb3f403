from conveyor.cli import cli

cli()
