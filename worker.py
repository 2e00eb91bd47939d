"""The worker entry point: `python worker.py` (or `durabatch worker`).

The service itself (store, Temporal client, the Worker with durabatch's workflows and activities) is
`durabatch.service`; this file stays a thin entry so deployments can run it directly.
"""

from __future__ import annotations

from durabatch.service import main

if __name__ == "__main__":
    main()
