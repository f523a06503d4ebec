"""The errors baseliner owns.

    BaselinerError            anything the CLI turns into one line and an exit code
    ├── ConfigError           a bad configuration file or key            (exit 2)
    ├── InputError            a bad argument, export file or snapshot id (exit 2)
    ├── StoreError            an unreadable or incompatible database     (exit 4)
    └── ProviderError         one scope could not be collected; never leaves collect(),
                              it becomes a failed ScopeResult carrying its text

SDK exceptions are translated into ProviderError at the provider boundary, so nothing
above ``providers/`` knows botocore, google.api_core or azure.core.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FINDINGS = 1
EXIT_USAGE = 2
EXIT_PARTIAL = 3
EXIT_STORE = 4


class BaselinerError(Exception):
    exit_code = EXIT_USAGE


class ConfigError(BaselinerError):
    exit_code = EXIT_USAGE


class InputError(BaselinerError):
    exit_code = EXIT_USAGE


class StoreError(BaselinerError):
    exit_code = EXIT_STORE


class ProviderError(BaselinerError):
    """A scope (or a whole account) could not be collected."""
