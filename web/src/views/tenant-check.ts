/**
 * A tenant that cannot be shown says so plainly instead of an empty page: an id that is not
 * one, another tenant than the signed-in key's, or (for the operator, who may open any) a
 * tenant that does not exist: no keys and nothing stored.
 */

import { listDashboards, request } from '../api';
import type { components } from '../api-types';
import { h } from '../dom';
import type { SessionInfo } from '../session';

/** A tenant id: 1 to 128 characters from `[A-Za-z0-9_-]`. */
export const TENANT_RE = /^[A-Za-z0-9_-]{1,128}$/;

/** Why `requested` (the address's `?tenant=`, if any) cannot be shown to `session`, or null. */
export function tenantRefusal(session: SessionInfo, requested: string | null): string | null {
  if (requested === null) return null;
  if (!TENANT_RE.test(requested))
    return `“${requested}” is not a tenant id: an id is 1–128 characters from A–Z, a–z, 0–9, _ and -.`;
  if (session.tenant_id && session.kind !== 'link' && requested !== session.tenant_id)
    return `This key belongs to tenant “${session.tenant_id}”: it cannot open tenant “${requested}”.`;
  return null;
}

/**
 * For the operator: why `tenant` looks absent (no keys, no dashboards), or null when it has
 * either (or the check could not be made: the page then shows what there is).
 */
export async function unknownTenant(
  session: SessionInfo,
  tenant: string,
  signal?: AbortSignal,
): Promise<string | null> {
  if (session.kind !== 'operator') return null;
  try {
    const [keys, dashboards] = await Promise.all([
      request<components['schemas']['KeyList']>(
        'GET',
        '/v1/keys',
        { tenant_id: tenant },
        undefined,
        signal,
      ),
      listDashboards(tenant, signal),
    ]);
    if (keys.keys.length > 0 || dashboards.length > 0) return null;
  } catch {
    return null;
  }
  return `There is no tenant “${tenant}”: it has no keys and no dashboards. Check the id, or create the tenant's first key (POST /v1/keys).`;
}

/**
 * The page that says why, with a way on: a link to the key's own tenant (`open` follows it in
 * the app), else `picker` (the operator chooses another).
 */
export function tenantNotice(
  message: string,
  session: SessionInfo,
  open: (tenant: string) => void,
  picker: () => HTMLElement,
): HTMLElement {
  const own = session.tenant_id;
  return h(
    'section',
    { class: 'welcome notice-page', 'data-testid': 'tenant-problem' },
    h('h1', {}, 'Tenant not available'),
    h('p', { role: 'alert' }, message),
    own
      ? h(
          'a',
          {
            href: `?tenant=${encodeURIComponent(own)}`,
            onclick: (e: MouseEvent) => {
              if (e.metaKey || e.ctrlKey || e.shiftKey || e.button !== 0) return;
              e.preventDefault();
              open(own);
            },
          },
          `Open tenant “${own}”`,
        )
      : picker(),
  );
}
