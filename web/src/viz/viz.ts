/** What every visualisation gets, and what it offers its panel. */

import type { Unit } from '../format';
import type { Palette } from '../theme';
import type { WidgetRule } from '../alerts';
import type { WindowProgress } from '../trend';
import type { Stat, WindowPoint } from '../types';

/** A rule on the widget's metric with its served state (see `rulesForWidget`). */
export type RuleView = WidgetRule;

/** One group of a split widget, as drawn. */
export interface GroupView {
  key: string;
  /** The group's dimension values (`eu · pro`), or `other`. */
  label: string;
  other: boolean;
  /** The stat over the whole range (the gateway's ranking). */
  total: number | null;
  points: readonly WindowPoint[];
}

export interface VizContext {
  /** The widget's windows, oldest first (may extend beyond the range). */
  points: readonly WindowPoint[];
  /** Displayed range, epoch ms. */
  from: number;
  to: number;
  /** The widget's window size, ms. */
  windowMs: number;
  /** Where missing windows are known to be zero (additive stats), else null. */
  fill: { from: number; to: number } | null;
  stat: Stat;
  unit: Unit;
  rules: readonly RuleView[];
  palette: Palette;
  /** Live ranges: how the open windows filled, as this page saw them (see `compareLatest`). */
  progress?: WindowProgress;
  /** Split widgets: the groups, ranked (then `other`); `points` is then empty. */
  groups?: readonly GroupView[];
}

export interface Viz {
  render(ctx: VizContext): void;
  resize(width: number, height: number): void;
  destroy(): void;
}
