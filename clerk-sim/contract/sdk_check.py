"""SDK contract check: Clerk's official Python SDK (clerk-backend-api) against clerk-sim.

Usage: CLERK_SECRET_KEY=sk_test_... python sdk_check.py http://127.0.0.1:PORT
Creates a token and revokes it through the SDK, checks the SDK parsed every field, that a
second revoke raises the SDK's ClerkErrors carrying Clerk's error code, and that the simulator's
control surface shows the token revoked. Then opens sessions (accepting tokens through the
control surface, as a user opening the link), lists them through the SDK with filters and
paging, revokes one, and checks the errors the SDK reports for a bad query, a session that is
no longer active and an unknown one. Exits non-zero on the first failed check.
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


def sim_post(path):
    request = urllib.request.Request(f"{base}{path}", method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
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

# ---------- sessions ----------

user = "user_py_sessions"
actor = {"sub": "user_py_actor", "actortokens.dev": {"request": "ns/py-check"}}
opened = []
for _ in range(3):
    t = clerk.actor_tokens.create(
        request={"user_id": user, "actor": actor, "session_max_duration_in_seconds": 900}
    )
    opened.append(sim_post(f"/__sim/tokens/{t.id}/accept")["session_id"])
newest_first = list(reversed(opened))

sessions = clerk.sessions.list(user_id=user, status=models.QueryParamStatus.ACTIVE)
check(all(isinstance(x, models.Session) for x in sessions), "list returns Sessions")
check([x.id for x in sessions] == newest_first, "the user's three active sessions, newest first")
first = sessions[0]
check(first.status == models.Status.ACTIVE and first.user_id == user, "status and user_id parsed")
check(first.client_id.startswith("client_"), "client_id parsed")
check(
    isinstance(first.expire_at, int) and first.expire_at - first.created_at == 900_000,
    "expire_at is created_at + session_max_duration (ms)",
)
check(isinstance(first.abandon_at, int) and isinstance(first.last_active_at, int), "abandon_at, last_active_at parsed")
check(all(item["actor"] == actor for item in last_body["json"]), "each session carries the token's actor, extra keys kept")

page = clerk.sessions.list(user_id=user, limit=2, offset=0)
check([x.id for x in page] == newest_first[:2], "limit=2 gives the two newest")
page = clerk.sessions.list(user_id=user, limit=2, offset=2)
check([x.id for x in page] == newest_first[2:], "offset=2 gives the rest")
by_client = clerk.sessions.list(client_id=first.client_id)
check([x.id for x in by_client] == [first.id], "client_id filters to that client's session")

revoked = clerk.sessions.revoke(session_id=first.id)
check(isinstance(revoked, models.Session) and revoked.id == first.id, "revoke returns the session")
check(revoked.status == models.Status.REVOKED, "revoke answers status revoked")
active = clerk.sessions.list(user_id=user, status=models.QueryParamStatus.ACTIVE)
check([x.id for x in active] == newest_first[1:], "the revoked session is no longer active")
gone = clerk.sessions.list(user_id=user, status=models.QueryParamStatus.REVOKED)
check([x.id for x in gone] == [first.id], "status=revoked lists it")

try:
    clerk.sessions.revoke(session_id=first.id)
    check(False, "revoking it again raises")
except models.ClerkErrors as e:
    check(e.raw_response.status_code == 400, "revoking it again is a 400")
    codes = [err.code for err in e.data.errors]
    check(codes == ["session_cannot_be_revoked_code"], f"with the simulator's code {codes}")

try:
    clerk.sessions.revoke(session_id="sess_no_such_session")
    check(False, "revoking an unknown session raises")
except models.ClerkErrors as e:
    check(e.raw_response.status_code == 404, "an unknown session is a 404")
    check([err.code for err in e.data.errors] == ["resource_not_found"], "with code resource_not_found")

try:
    clerk.sessions.list(user_id=user, limit=501)
    check(False, "limit=501 raises")
except models.ClerkErrors as e:
    check(e.raw_response.status_code == 422, "limit=501 is a 422")
    check([err.meta.get("param_name") for err in e.data.errors] == ["limit"], "naming limit")

listed = {x["id"]: x for x in sim_get("/__sim/sessions")}
check(listed[first.id]["status"] == "revoked", "the simulator lists the session as revoked")
stats = sim_get("/__sim/stats")
check(
    stats["list_sessions"]["total"] == 7 and stats["revoke_session"]["total"] == 3,
    "seven lists and three session revokes reached the simulator",
)
