from digitlab.cli import entry

entry()
