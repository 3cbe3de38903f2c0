/** Dark and light themes: CSS variables on `<html data-theme>`, remembered in localStorage. */

export type Theme = 'dark' | 'light';

const KEY = 'rtdash.theme';

export function storedTheme(): Theme {
  const saved = safeGet(KEY);
  if (saved === 'dark' || saved === 'light') return saved;
  return window.matchMedia?.('(prefers-color-scheme: light)').matches ? 'light' : 'dark';
}

export function applyTheme(theme: Theme): void {
  document.documentElement.dataset.theme = theme;
  document.querySelector('meta[name="color-scheme"]')?.setAttribute('content', theme);
}

export function saveTheme(theme: Theme): void {
  safeSet(KEY, theme);
}

export function currentTheme(): Theme {
  return document.documentElement.dataset.theme === 'light' ? 'light' : 'dark';
}

/** Colours charts need, read from the theme's CSS variables. */
export interface Palette {
  text: string;
  muted: string;
  grid: string;
  panel: string;
  series: string;
  seriesFill: string;
  provisional: string;
  revised: string;
  danger: string;
  warn: string;
  font: string;
}

export function palette(): Palette {
  const css = getComputedStyle(document.documentElement);
  const v = (name: string, fallback: string) => css.getPropertyValue(name).trim() || fallback;
  return {
    text: v('--text', '#d8dee9'),
    muted: v('--muted', '#8a93a6'),
    grid: v('--grid', 'rgba(255,255,255,0.07)'),
    panel: v('--panel', '#181b22'),
    series: v('--series', '#5aa9ff'),
    seriesFill: v('--series-fill', 'rgba(90,169,255,0.18)'),
    provisional: v('--series', '#5aa9ff'),
    revised: v('--revised', '#a391d6'),
    danger: v('--danger', '#f2545b'),
    warn: v('--warn', '#f0b429'),
    font: `11px ${v('--font-ui', 'system-ui, sans-serif')}`,
  };
}

/** localStorage that tolerates being unavailable (privacy modes, file://). */
export function safeGet(key: string): string | null {
  try {
    return window.localStorage.getItem(key);
  } catch {
    return null;
  }
}

export function safeSet(key: string, value: string): void {
  try {
    window.localStorage.setItem(key, value);
  } catch {
    /* not persisted; the app still works */
  }
}
