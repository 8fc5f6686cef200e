// SDK contract check: Clerk's official JavaScript SDK (@clerk/backend) against clerk-sim.
//
// Usage: CLERK_SECRET_KEY=sk_test_... node sdk_check.mjs http://127.0.0.1:PORT
// (run from a folder whose node_modules holds @clerk/backend; run.sh copies it there).
// Creates a token and revokes it through the SDK, checks the SDK parsed every field, that a
// second revoke rejects with the SDK's error carrying Clerk's error code, and that the
// simulator's control surface shows the token revoked. Then opens sessions (accepting tokens
// through the control surface, as a user opening the link), lists them through the SDK with
// filters and paging, revokes one, and checks the errors the SDK reports for a bad query, a
// session that is no longer active and an unknown one. Exits non-zero on the first failure.

import { isDeepStrictEqual } from 'node:util';

import { createClerkClient } from '@clerk/backend';

const base = process.argv[2].replace(/\/$/, '');
const secretKey = process.env.CLERK_SECRET_KEY;

function check(condition, what) {
  if (!condition) {
    console.log(`  FAILED: ${what}`);
    process.exit(1);
  }
  console.log(`  ok: ${what}`);
}

async function simGet(path) {
  const response = await fetch(`${base}${path}`);
  return response.json();
}

async function simPost(path) {
  const response = await fetch(`${base}${path}`, { method: 'POST' });
  return response.json();
}

async function rejection(promise) {
  try {
    await promise;
  } catch (e) {
    return e;
  }
  return null;
}

// Start from a clean simulator so the counts below are this SDK's alone.
await fetch(`${base}/__sim/reset`, { method: 'POST' });

const clerk = createClerkClient({ secretKey, apiUrl: base });

const token = await clerk.actorTokens.create({
  userId: 'user_js_subject',
  actor: { sub: 'user_js_actor' },
  expiresInSeconds: 600,
});
check(typeof token.id === 'string' && token.id.startsWith('act_'), `id parsed (${token.id.slice(0, 8)}...)`);
check(token.status === 'pending', 'status is pending');
check(token.userId === 'user_js_subject', 'userId parsed');
check(token.actor && token.actor.sub === 'user_js_actor', 'actor.sub parsed');
check(typeof token.token === 'string' && token.token.length > 0, 'token parsed');
check(typeof token.url === 'string' && token.url.includes(token.token), 'url parsed and holds the token');
check(Number.isInteger(token.createdAt) && token.updatedAt === token.createdAt, 'timestamps parsed');

const revoked = await clerk.actorTokens.revoke(token.id);
check(revoked.id === token.id, 'revoke returns the same token');
check(revoked.status === 'revoked', 'revoke answers status revoked');

const again = await rejection(clerk.actorTokens.revoke(token.id));
check(again !== null, 'a second revoke rejects');
check(again.status === 400, `a second revoke is a 400 (${again.status})`);
const codes = (again.errors || []).map(e => e.code);
check(
  codes.length === 1 && codes[0] === 'actor_token_cannot_be_revoked_code',
  `the SDK error carries Clerk's code ${JSON.stringify(codes)}`,
);

const unknown = await rejection(clerk.actorTokens.revoke('act_no_such_token'));
check(unknown !== null && unknown.status === 404, 'an unknown ID is a 404');
check((unknown.errors || []).map(e => e.code).join() === 'resource_not_found', 'with code resource_not_found');

const listed = Object.fromEntries((await simGet('/__sim/tokens')).map(t => [t.id, t]));
check(listed[token.id] && listed[token.id].status === 'revoked', 'the simulator lists the token as revoked');
check(listed[token.id].expires_in_seconds === 600, 'expires_in_seconds reached the simulator');
const stats = await simGet('/__sim/stats');
check(stats.create.total === 1 && stats.revoke.total === 3, 'one create and three revokes reached the simulator');
const versions = Object.keys(stats.api_versions).sort();
check(
  versions.length === 1 && versions[0] === '2026-05-12',
  `the SDK sent Clerk-API-Version 2026-05-12 and it was accepted (${versions})`,
);

// ---------- sessions ----------

const user = 'user_js_sessions';
const actor = { sub: 'user_js_actor', 'actortokens.dev': { request: 'ns/js-check' } };
const opened = [];
for (let i = 0; i < 3; i++) {
  const t = await clerk.actorTokens.create({ userId: user, actor, sessionMaxDurationInSeconds: 900 });
  opened.push((await simPost(`/__sim/tokens/${t.id}/accept`)).session_id);
}
const newestFirst = [...opened].reverse();
const ids = list => list.data.map(x => x.id);
const same = (a, b) => JSON.stringify(a) === JSON.stringify(b);

const sessions = await clerk.sessions.getSessionList({ userId: user, status: 'active' });
check(same(ids(sessions), newestFirst), "the user's three active sessions, newest first");
check(sessions.totalCount === 3, `totalCount parsed (${sessions.totalCount})`);
const first = sessions.data[0];
check(first.status === 'active' && first.userId === user, 'status and userId parsed');
check(typeof first.clientId === 'string' && first.clientId.startsWith('client_'), 'clientId parsed');
check(first.expireAt - first.createdAt === 900_000, 'expireAt is createdAt + sessionMaxDuration (ms)');
check(Number.isInteger(first.abandonAt) && Number.isInteger(first.lastActiveAt), 'abandonAt, lastActiveAt parsed');
// Key order is not part of the contract (Clerk keeps the actor as a JSON object).
check(isDeepStrictEqual(first.actor, actor), "the session carries the token's actor, extra keys kept");

let page = await clerk.sessions.getSessionList({ userId: user, limit: 2 });
check(same(ids(page), newestFirst.slice(0, 2)) && page.totalCount === 3, 'limit: 2 gives the two newest of 3');
page = await clerk.sessions.getSessionList({ userId: user, limit: 2, offset: 2 });
check(same(ids(page), newestFirst.slice(2)) && page.totalCount === 3, 'offset: 2 gives the rest');
const byClient = await clerk.sessions.getSessionList({ clientId: first.clientId });
check(same(ids(byClient), [first.id]), "clientId filters to that client's session");

const revokedSession = await clerk.sessions.revokeSession(first.id);
check(revokedSession.id === first.id, 'revokeSession returns the session');
check(revokedSession.status === 'revoked', 'revokeSession answers status revoked');
const active = await clerk.sessions.getSessionList({ userId: user, status: 'active' });
check(same(ids(active), newestFirst.slice(1)), 'the revoked session is no longer active');

const twice = await rejection(clerk.sessions.revokeSession(first.id));
check(twice !== null && twice.status === 400, 'revoking it again is a 400');
check(
  (twice.errors || []).map(e => e.code).join() === 'session_cannot_be_revoked_code',
  "with the simulator's code",
);
const unknownSession = await rejection(clerk.sessions.revokeSession('sess_no_such_session'));
check(unknownSession !== null && unknownSession.status === 404, 'an unknown session is a 404');
check((unknownSession.errors || []).map(e => e.code).join() === 'resource_not_found', 'with code resource_not_found');
const tooMany = await rejection(clerk.sessions.getSessionList({ userId: user, limit: 501 }));
check(tooMany !== null && tooMany.status === 422, 'limit: 501 is a 422');
check((tooMany.errors || []).map(e => e.meta && e.meta.paramName).join() === 'limit', 'naming limit');

const listedSessions = Object.fromEntries((await simGet('/__sim/sessions')).map(x => [x.id, x]));
check(listedSessions[first.id].status === 'revoked', 'the simulator lists the session as revoked');
const sessionStats = await simGet('/__sim/stats');
check(
  sessionStats.list_sessions.total === 6 && sessionStats.revoke_session.total === 3,
  'six lists and three session revokes reached the simulator',
);
