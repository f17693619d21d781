"""What every Azure DevOps test shares about the fake organisation: its PAT, and the SDK's cache folder.

The SDK reads ``AZURE_DEVOPS_CACHE_DIR`` once, when it is first imported, and otherwise writes to
the user's home (and would remember the fake's resource locations across runs on changing ports);
importing this module points it at a temporary folder, before anything imports the SDK.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

PAT = "pat-0123456789-secret"
TOKEN_ENV = "ADO_TEST_PAT"

SDK_CACHE = tempfile.mkdtemp(prefix="refinebot-ado-sdk-cache-")
os.environ["AZURE_DEVOPS_CACHE_DIR"] = SDK_CACHE
atexit.register(shutil.rmtree, SDK_CACHE, True)
