// SDK contract check: Clerk's official JavaScript SDK (@clerk/backend) against clerk-sim.
//
// Usage: CLERK_SECRET_KEY=sk_test_... node sdk_check.mjs http://127.0.0.1:PORT
// (run from a folder whose node_modules holds @clerk/backend; run.sh copies it there).
// Creates a token and revokes it through the SDK, checks the SDK parsed every field, that a
// second revoke rejects with the SDK's error carrying Clerk's error code, and that the
// simulator's control surface shows the token revoked. Exits non-zero on the first failure.

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
