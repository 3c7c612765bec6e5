"""The same back-office system over caseflow's HTTP API (``caseflow serve``).

It authenticates with a bearer token (``caseflow token create p1``), opens a case with an
``Idempotency-Key`` (a retry returns the first result, marked ``Idempotent-Replayed: true``), advances it
with ``If-Match`` set to the case's ``ETag`` (a stale version answers 412), and reads a queue.

Run it against a server: ``python examples/http_client.py --url http://127.0.0.1:8000 --token TOKEN``
(needs ``httpx``: ``pip install httpx``).
"""

from __future__ import annotations

import argparse
import uuid

import httpx


def run(client: httpx.Client, token: str) -> None:
    """Open, replay, advance with If-Match, and read the queue, printing what the server says."""
    auth = {"Authorization": f"Bearer {token}"}
    key = f"backoffice:{uuid.uuid4()}"  # one key per application, kept with it for retries

    opened = client.post("/api/v1/cases", headers={**auth, "Idempotency-Key": key},
                         json={"workflow": "hukou_transfer", "data": {"applicant": "李四", "needs_verification": True}})
    opened.raise_for_status()
    case = opened.json()
    print(f"opened case {case['id']} ({opened.status_code}), ETag {opened.headers['ETag']}")

    # A network retry of the same request: nothing is opened twice.
    retry = client.post("/api/v1/cases", headers={**auth, "Idempotency-Key": key},
                        json={"workflow": "hukou_transfer", "data": {"applicant": "李四", "needs_verification": True}})
    retry.raise_for_status()
    print(f"retry answered {retry.status_code}, Idempotent-Replayed: {retry.headers.get('Idempotent-Replayed')}, "
          f"same case {retry.json()['id'] == case['id']}")

    fired = client.post(f"/api/v1/cases/{case['id']}/fire",
                        headers={**auth, "If-Match": opened.headers["ETag"], "Idempotency-Key": f"{key}:handover"},
                        json={"trigger": "hand_over_verification", "data": {"slip_no": "JB-2026-0001"}})
    fired.raise_for_status()
    print(f"case {case['id']} is now {fired.json()['state_label']}, ETag {fired.headers['ETag']}")

    # The old ETag is stale now: the server refuses rather than act on what the clerk no longer sees.
    stale = client.post(f"/api/v1/cases/{case['id']}/fire", headers={**auth, "If-Match": opened.headers["ETag"]},
                        json={"trigger": "submit_for_approval"})
    print(f"a command with the old ETag answers {stale.status_code}")

    # The verification step is the community police's (its assignee), so it is in p2's queue.
    queue = client.get("/api/v1/queue", params={"person": "p2"}, headers=auth)
    queue.raise_for_status()
    for item in queue.json():
        print(f"  p2 queue: case {item['case']} {item['label']} {item['time_left']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000", help="where caseflow serve listens")
    parser.add_argument("--token", required=True, help="a token from `caseflow token create p1`")
    args = parser.parse_args()
    with httpx.Client(base_url=args.url, timeout=30) as client:
        run(client, args.token)


if __name__ == "__main__":
    main()
