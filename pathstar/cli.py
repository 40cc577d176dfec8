"""
What every command line of the project shares: an argparse parser whose errors are one line
(a UserError, exit code 2) instead of argparse's usage block. Imports only pathstar.errors.
"""
import argparse

from pathstar.errors import UserError


class ArgumentParser(argparse.ArgumentParser):
    def error(self, message):  # one line and exit 2, like every other user error
        raise UserError(f"{message} (see --help)")
