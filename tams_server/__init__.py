"""tams-server: a spec-driven server for the Time-addressable Media Store API 7.0."""

import warnings

# Connexion imports starlette.testclient at import time; its deprecation notice is noise for users.
warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`", category=UserWarning)
