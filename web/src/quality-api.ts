/** Data quality (`GET /v1/data-quality`): what the data-quality page reads. See docs/api.md. */

import { request } from './api';
import type { components } from './api-types';

type Schemas = components['schemas'];

/** A tenant's accepted, rejected and late events per source and event type over a range. */
export type DataQuality = Schemas['DataQuality'];
export type QualityRow = Schemas['QualityRow'];
export type RejectionReason = Schemas['RejectionReason'];
export type RejectSample = Schemas['RejectSample'];

/** `GET /v1/data-quality` over `[from, to)` (epoch milliseconds). */
export function getDataQuality(
  tenant: string,
  from: number,
  to: number,
  signal?: AbortSignal,
): Promise<DataQuality> {
  return request<DataQuality>(
    'GET',
    '/v1/data-quality',
    {
      tenant_id: tenant,
      from: new Date(from).toISOString(),
      to: new Date(to).toISOString(),
    },
    undefined,
    signal,
  );
}
