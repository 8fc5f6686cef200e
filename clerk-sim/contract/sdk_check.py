"""SDK contract check: Clerk's official Python SDK (clerk-backend-api) against clerk-sim.

Usage: CLERK_SECRET_KEY=sk_test_... python sdk_check.py http://127.0.0.1:PORT
Creates a token and revokes it through the SDK, checks the SDK parsed every field, that a
second revoke raises the SDK's ClerkErrors carrying Clerk's error code, and that the simulator's
control surface shows the token revoked. Exits non-zero on the first failed check.
"""

import json
import os
import sys
import urllib.request

import httpx
from clerk_backend_api import Clerk, models

base = sys.argv[1].rstrip("/")
key = os.environ["CLERK_SECRET_KEY"]


def check(condition, what):
    if not condition:
        print(f"  FAILED: {what}", flush=True)
        sys.exit(1)
    print(f"  ok: {what}", flush=True)


def sim_get(path):
    with urllib.request.urlopen(f"{base}{path}", timeout=10) as response:
        return json.load(response)


# The SDK models `actor` as an object with no declared fields (as the spec does) and keeps none
# of its keys, so the raw answer it parsed is kept too, to check what it was given.
last_body = {}


def keep_body(response):
    response.read()
    last_body["json"] = response.json() if response.content else None


# Start from a clean simulator so the counts below are this SDK's alone.
urllib.request.urlopen(urllib.request.Request(f"{base}/__sim/reset", method="POST"), timeout=10)

clerk = Clerk(
    bearer_auth=key,
    server_url=f"{base}/v1",
    client=httpx.Client(event_hooks={"response": [keep_body]}, timeout=10),
)

token = clerk.actor_tokens.create(
    request={
        "user_id": "user_py_subject",
        "actor": {"sub": "user_py_actor"},
        "expires_in_seconds": 600,
    }
)
check(isinstance(token, models.ActorToken), "create returns an ActorToken")
check(token.id.startswith("act_"), f"id parsed ({token.id[:8]}...)")
check(token.status == models.ActorTokenStatus.PENDING, "status is pending")
check(token.user_id == "user_py_subject", "user_id parsed")
check(isinstance(token.actor, models.ActorTokenActor), "actor parsed")
check(last_body["json"]["actor"] == {"sub": "user_py_actor"}, "actor.sub was in the answer the SDK parsed")
check(isinstance(token.token, str) and len(token.token) > 0, "token parsed")
check(isinstance(token.url, str) and token.token in token.url, "url parsed and holds the token")
check(isinstance(token.created_at, int) and token.updated_at == token.created_at, "timestamps parsed")

revoked = clerk.actor_tokens.revoke(actor_token_id=token.id)
check(revoked.id == token.id, "revoke returns the same token")
check(revoked.status == models.ActorTokenStatus.REVOKED, "revoke answers status revoked")

try:
    clerk.actor_tokens.revoke(actor_token_id=token.id)
    check(False, "a second revoke raises")
except models.ClerkErrors as e:
    check(e.raw_response.status_code == 400, "a second revoke is a 400")
    codes = [err.code for err in e.data.errors]
    check(codes == ["actor_token_cannot_be_revoked_code"], f"the SDK error carries Clerk's code {codes}")

try:
    clerk.actor_tokens.revoke(actor_token_id="act_no_such_token")
    check(False, "revoking an unknown ID raises")
except models.ClerkErrors as e:
    check(e.raw_response.status_code == 404, "an unknown ID is a 404")
    check([err.code for err in e.data.errors] == ["resource_not_found"], "with code resource_not_found")

listed = {t["id"]: t for t in sim_get("/__sim/tokens")}
check(listed.get(token.id, {}).get("status") == "revoked", "the simulator lists the token as revoked")
check(listed[token.id]["expires_in_seconds"] == 600, "expires_in_seconds reached the simulator")
check(listed[token.id]["session_max_duration_in_seconds"] == 1800, "session_max_duration_in_seconds is 1800")
stats = sim_get("/__sim/stats")
check(stats["create"]["total"] == 1 and stats["revoke"]["total"] == 3, "one create and three revokes reached the simulator")
versions = sorted(stats["api_versions"])
check(versions == ["2025-11-10"], f"the SDK sent Clerk-API-Version 2025-11-10 and it was accepted ({versions})")
