/**
 * The alert endpoints (docs/api.md "Alert rules", "Alert state", "Silences"): rules, their
 * state as the aggregators hold it, their history, test notifications and silences.
 */

import type { components } from './api-types';
import { request } from './api';
import type { AlertRule } from './types';

type Schemas = components['schemas'];

export type AlertInput = Schemas['AlertInput'];
export type RuleState = Schemas['RuleState'];
export type SeriesState = Schemas['SeriesState'];
export type AlertEvent = Schemas['AlertEventOut'];
export type Silence = Schemas['SilenceOut'];
export type SilenceInput = Schemas['SilenceInput'];
export type TestOutcome = Schemas['TestOutcome'];

const path = (id: string) => encodeURIComponent(id);

/** `GET /v1/alert-states`: every rule's state summary (no series). */
export async function listAlertStates(tenant: string, signal?: AbortSignal): Promise<RuleState[]> {
  const answer = await request<Schemas['RuleStates']>(
    'GET',
    '/v1/alert-states',
    { tenant_id: tenant },
    undefined,
    signal,
  );
  return answer.alerts;
}

export function getAlert(tenant: string, id: string, signal?: AbortSignal): Promise<AlertRule> {
  return request<AlertRule>(
    'GET',
    `/v1/alerts/${path(id)}`,
    { tenant_id: tenant },
    undefined,
    signal,
  );
}

export function createAlert(tenant: string, body: AlertInput): Promise<AlertRule> {
  return request<AlertRule>('POST', '/v1/alerts', {}, { ...body, tenant_id: tenant });
}

/** Replaces a rule; an empty `notify_channel` keeps the stored webhook. */
export function updateAlert(tenant: string, id: string, body: AlertInput): Promise<AlertRule> {
  return request<AlertRule>('PUT', `/v1/alerts/${path(id)}`, { tenant_id: tenant }, body);
}

export async function deleteAlert(tenant: string, id: string): Promise<void> {
  await request('DELETE', `/v1/alerts/${path(id)}`, { tenant_id: tenant });
}

/** `GET /v1/alerts/{id}/state`: the rule's state per series, worst first. */
export function getRuleState(tenant: string, id: string, signal?: AbortSignal): Promise<RuleState> {
  return request<RuleState>(
    'GET',
    `/v1/alerts/${path(id)}/state`,
    { tenant_id: tenant },
    undefined,
    signal,
  );
}

/** `GET /v1/alerts/{id}/events`: transitions, deliveries and tests, newest first. */
export async function listAlertEvents(
  tenant: string,
  id: string,
  signal?: AbortSignal,
): Promise<AlertEvent[]> {
  const answer = await request<Schemas['AlertEvents']>(
    'GET',
    `/v1/alerts/${path(id)}/events`,
    { tenant_id: tenant, limit: 100 },
    undefined,
    signal,
  );
  return answer.events;
}

/** `POST /v1/alerts/{id}/test`: one test notification to the rule's webhook. */
export function sendTestNotification(tenant: string, id: string): Promise<TestOutcome> {
  return request<TestOutcome>('POST', `/v1/alerts/${path(id)}/test`, { tenant_id: tenant });
}

export async function listSilences(
  tenant: string,
  alertId: string,
  signal?: AbortSignal,
): Promise<Silence[]> {
  const answer = await request<Schemas['SilenceList']>(
    'GET',
    '/v1/silences',
    { tenant_id: tenant, alert_id: alertId },
    undefined,
    signal,
  );
  return answer.silences;
}

export function createSilence(tenant: string, body: SilenceInput): Promise<Silence> {
  return request<Silence>('POST', '/v1/silences', {}, { ...body, tenant_id: tenant });
}

/** `DELETE /v1/silences/{id}`: expires it now (it stays listed). */
export async function expireSilence(tenant: string, id: string): Promise<void> {
  await request('DELETE', `/v1/silences/${path(id)}`, { tenant_id: tenant });
}
