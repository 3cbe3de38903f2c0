/** What every visualisation gets, and what it offers its panel. */

import type { Unit } from '../format';
import type { Palette } from '../theme';
import type { AlertRule, AlertState, Stat, WindowPoint } from '../types';

export interface RuleView {
  rule: AlertRule;
  /** Evaluated on the widget's windows (see `ruleState`). */
  state: AlertState;
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
}

export interface Viz {
  render(ctx: VizContext): void;
  resize(width: number, height: number): void;
  destroy(): void;
}
