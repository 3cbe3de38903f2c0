/**
 * The time zone times are shown in (UTC or the browser's own), remembered per browser in
 * localStorage and applied to every formatted time (see `setDisplayZone` in format.ts) and to
 * the charts' time axes.
 */

import uPlot from 'uplot';
import { displayZone, setDisplayZone } from './format';
import type { DisplayZone } from './format';
import { safeGet, safeSet } from './theme';

const KEY = 'rtdash.timeZone';

/** The zone this browser chose before (default: its own). */
export function storedZone(): DisplayZone {
  return safeGet(KEY) === 'utc' ? 'utc' : 'local';
}

/** Applies the remembered zone; call once at start. */
export function applyStoredZone(): void {
  setDisplayZone(storedZone());
}

/** Shows times in `z` from now on and remembers the choice in this browser. */
export function chooseZone(z: DisplayZone): void {
  setDisplayZone(z);
  safeSet(KEY, z);
}

/** The browser's own zone name (`Europe/Berlin`), or `local` when it does not say. */
export function browserZoneName(): string {
  try {
    return Intl.DateTimeFormat().resolvedOptions().timeZone || 'local';
  } catch {
    return 'local';
  }
}

/** `UTC`, or the browser's zone name: what a label names. */
export function zoneName(z: DisplayZone = displayZone()): string {
  return z === 'utc' ? 'UTC' : browserZoneName();
}

/** uPlot's `tzDate`: a Date whose local fields are those of the display zone, so that time
 * axes split on the zone's hours and days. */
export function chartDate(seconds: number): Date {
  const d = new Date(seconds * 1000);
  return displayZone() === 'utc' ? uPlot.tzDate(d, 'Etc/UTC') : d;
}
