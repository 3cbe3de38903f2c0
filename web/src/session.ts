/**
 * Signing in (docs/security.md): the browser holds no key, only the gateway's session cookie
 * (`rtdash_session`, HttpOnly, SameSite=Strict), which same-origin `fetch` and `EventSource`
 * send by themselves. `POST /v1/session {"key"}` signs in, `GET /v1/session` says who is
 * signed in, `DELETE /v1/session` signs out. `/#key=<key>` signs in directly: the fragment
 * never reaches the server, and it is removed from the address bar at once.
 */

import { authHeaders } from './api';
import { safeGet, safeSet } from './theme';

/** Set in this browser while it holds a session (never the key): a later start without one
 * then knows the session ended rather than never began. */
const SIGNED_IN_KEY = 'rtdash.signedIn';

/** Who is signed in (`GET /v1/session`). */
export interface SessionInfo {
  /** `key` (a tenant's key), `operator`, or `link` (an embedded dashboard). */
  kind: string;
  tenant_id?: string;
  role?: string;
  name?: string;
  /** The one dashboard of a link. */
  dashboard_id?: string;
}

/** Roles in order; a role can do what those before it can. */
const ROLES = ['ingest', 'viewer', 'editor', 'admin'];

/** Whether `session` may change dashboards (an editor or higher, or the operator). */
export function canEdit(session: SessionInfo): boolean {
  if (session.kind === 'link') return false;
  if (session.kind === 'operator') return true;
  return ROLES.indexOf(session.role ?? '') >= ROLES.indexOf('editor');
}

/** The key in the address bar's `#key=` fragment, removed from the address bar. */
export function takeFragmentKey(): string | null {
  const m = /^#key=([^&]+)/.exec(location.hash);
  if (!m?.[1]) return null;
  history.replaceState(null, '', location.pathname + location.search);
  try {
    return decodeURIComponent(m[1]);
  } catch {
    return null;
  }
}

/** The message of a gateway error answer, or `fallback`. */
async function message(res: Response, fallback: string): Promise<string> {
  try {
    const body = (await res.json()) as { error?: { message?: string } };
    return body.error?.message ?? fallback;
  } catch {
    return fallback;
  }
}

/** Signs in with `key`; throws an `Error` whose message says why it was refused. */
export async function signIn(key: string): Promise<void> {
  const res = await fetch('/v1/session', {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json' },
    body: JSON.stringify({ key: key.trim() }),
  });
  if (res.ok) {
    safeSet(SIGNED_IN_KEY, '1');
    return;
  }
  if (res.status === 401) throw new Error('This key is not valid (unknown, revoked or mistyped).');
  throw new Error(await message(res, `Sign-in refused (${res.status})`));
}

/** Who is signed in, or null (no session, or it ended). */
export async function currentSession(): Promise<SessionInfo | null> {
  const res = await fetch('/v1/session', {
    headers: { accept: 'application/json', ...authHeaders() },
  });
  if (!res.ok) return null;
  const session = (await res.json()) as SessionInfo;
  if (session.kind !== 'link') safeSet(SIGNED_IN_KEY, '1');
  return session;
}

/** Signs out (the cookie is cleared). */
export async function signOut(): Promise<void> {
  safeSet(SIGNED_IN_KEY, '');
  await fetch('/v1/session', { method: 'DELETE' }).catch(() => undefined);
}

/** When this browser had a session that is gone (its key revoked, or it expired): what to tell
 * the user, once. Null when it never had one or signed out itself. */
export function endedSessionNotice(): string | null {
  if (safeGet(SIGNED_IN_KEY) !== '1') return null;
  safeSet(SIGNED_IN_KEY, '');
  return 'Your session ended: the key it was opened with no longer works (revoked or expired), or the session expired. Sign in again with a valid key.';
}
