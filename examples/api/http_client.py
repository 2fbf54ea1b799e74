"""Plan through a running `quantplan api` with httpx (start one with `quantplan api`).

.venv/bin/python examples/api/http_client.py [BASE_URL]
"""

import os
import sys

import httpx

base = sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8000"
key = os.environ.get("QUANTPLAN_API_KEY")
headers = {"Authorization": f"Bearer {key}"} if key else {}
targets = {"model": "Llama-3.1-8B", "workload": {"requests_per_s": 5}}
answer = httpx.post(f"{base}/v1/plan", json=targets, headers=headers, timeout=60)
if answer.status_code != 200:
    sys.exit(f"error: {answer.json()['error']}")
print(answer.json()["summary"])
