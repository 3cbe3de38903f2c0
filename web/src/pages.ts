/**
 * The tenant's pages reached from the top bar besides dashboards and alerts: one view each,
 * opened with `?page=<key>`. The app routes to them through this table.
 */

import { MetricsView } from './views/metrics';
import { QualityView } from './views/quality';

/** A page's view: its root element, loaded once shown, disposed when left. */
export interface PageView {
  readonly root: HTMLElement;
  load(): Promise<void>;
  dispose(): void;
}

/** A page: its `?page=` key, its name (top bar, breadcrumb, title) and its view. */
export interface Page {
  readonly key: string;
  readonly label: string;
  make(tenant: string, editable: boolean): PageView;
}

export const PAGES = [
  {
    key: 'metrics',
    label: 'Metrics',
    make: (tenant: string, editable: boolean) => new MetricsView(tenant, editable),
  },
  {
    key: 'quality',
    label: 'Data quality',
    make: (tenant: string) => new QualityView(tenant),
  },
] as const satisfies readonly Page[];

export type PageKey = (typeof PAGES)[number]['key'];

/** The page of a `?page=` key, if it is one. */
export function pageOf(key: string | null): (typeof PAGES)[number] | undefined {
  return PAGES.find((p) => p.key === key);
}
