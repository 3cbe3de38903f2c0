import { describe, expect, it } from 'vitest';
import { fieldOfError } from './metrics-api';

describe('fieldOfError', () => {
  it('names the field of a definition error', () => {
    expect(fieldOfError('metric `field`: `window_secs` 7 does not divide a day (86400 s)')).toBe(
      'window_secs',
    );
    expect(fieldOfError('metric `m`: `dimensions` lists "a" twice')).toBe('dimensions');
  });

  it('names nothing for other errors', () => {
    expect(fieldOfError('unknown field `colour`, expected one of `name`')).toBe(null);
    expect(fieldOfError('gateway overloaded; retry shortly')).toBe(null);
  });
});
