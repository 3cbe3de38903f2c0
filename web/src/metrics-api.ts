/**
 * Metric definitions (`/v1/metric-definitions`) and schema discovery (`/v1/event-types`):
 * what the metrics page reads and writes. See docs/api.md.
 */

import { ApiError, request } from './api';
import type { components } from './api-types';

type Schemas = components['schemas'];

/** A definition as users write it. */
export type MetricDefinition = Schemas['MetricDefinition'];
/** A definition as answered: with its scope, revision and the dimension sets kept. */
export type DefinitionOut = Schemas['DefinitionOut'];
/** The event types seen of a tenant (schema discovery). */
export type EventTypes = Schemas['EventTypes'];
export type EventTypeInfo = Schemas['EventTypeInfo'];
export type PropertyInfo = Schemas['PropertyInfo'];
/** A backfill job: the metric computed over the archived past, with its progress. */
export type BackfillJob = Schemas['BackfillJob'];

const path = (id: string) => encodeURIComponent(id);

/** `GET /v1/metric-definitions`: the tenant's own, global and built-in definitions. */
export async function listDefinitions(
  tenant: string,
  signal?: AbortSignal,
): Promise<DefinitionOut[]> {
  const list = await request<Schemas['DefinitionList']>(
    'GET',
    '/v1/metric-definitions',
    { tenant_id: tenant },
    undefined,
    signal,
  );
  return list.definitions;
}

/** `GET /v1/event-types`: event types, properties, kinds, examples and distinct counts. */
export function listEventTypes(tenant: string, signal?: AbortSignal): Promise<EventTypes> {
  return request<EventTypes>('GET', '/v1/event-types', { tenant_id: tenant }, undefined, signal);
}

/** `backfill` of a definition's body: compute the last `hours` hours from the archive. */
const backfillOf = (hours: number | undefined) => (hours ? { backfill: { hours } } : {});

/** `POST /v1/metric-definitions`, with a backfill of the last `backfillHours` if given. */
export function createDefinition(
  tenant: string,
  def: MetricDefinition,
  backfillHours?: number,
): Promise<DefinitionOut> {
  return request<DefinitionOut>(
    'POST',
    '/v1/metric-definitions',
    { tenant_id: tenant },
    { ...def, tenant_id: tenant, ...backfillOf(backfillHours) },
  );
}

/** `GET /v1/metric-definitions/{name}/backfill`: the newest job, `null` if there is none. */
export async function getBackfill(
  tenant: string,
  name: string,
  signal?: AbortSignal,
): Promise<BackfillJob | null> {
  try {
    return await request<BackfillJob>(
      'GET',
      `/v1/metric-definitions/${path(name)}/backfill`,
      { tenant_id: tenant },
      undefined,
      signal,
    );
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) return null;
    throw err;
  }
}

/** `PUT /v1/metric-definitions/{name}` against the revision read. */
export function updateDefinition(
  tenant: string,
  def: MetricDefinition,
  revision: number | null | undefined,
  backfillHours?: number,
): Promise<DefinitionOut> {
  return request<DefinitionOut>(
    'PUT',
    `/v1/metric-definitions/${path(def.name)}`,
    { tenant_id: tenant },
    {
      ...def,
      tenant_id: tenant,
      ...(revision != null ? { revision } : {}),
      ...backfillOf(backfillHours),
    },
  );
}

/** `DELETE /v1/metric-definitions/{name}`. */
export async function deleteDefinition(tenant: string, name: string): Promise<void> {
  await request('DELETE', `/v1/metric-definitions/${path(name)}`, { tenant_id: tenant });
}

/** The field a definition error names (`metric "x": \`field\` problem`), if any. */
export function fieldOfError(message: string): string | null {
  const named =
    /^metric `[^`]*`: `([a-z_]+)`/.exec(message)?.[1] ?? /`([a-z_]+)`/.exec(message)?.[1];
  const known = [
    'name',
    'event_type',
    'field',
    'unique',
    'dimensions',
    'rollups',
    'window_secs',
    'description',
    'max_series_per_window',
    'backfill',
  ];
  return named && known.includes(named) ? named : null;
}
