import { describe, expect, it } from 'vitest';
import { fieldOf, parsePairs } from './alert-form';

describe('fieldOf', () => {
  it('names the field an API error is about', () => {
    expect(fieldOf('`notify_channel` refused: `169.254.169.254` is a link-local address')).toBe(
      'notify_channel',
    );
    expect(fieldOf('metric `nope` does not exist for tenant `t`')).toBe('metric');
    expect(fieldOf('metric `events` has no `p99` stat (it has: count)')).toBe('stat');
    expect(fieldOf('metric `events` has no dimension `region`')).toBe('dimensions');
    expect(fieldOf('`for_windows` must be 1 to 1000')).toBe('for_windows');
    expect(fieldOf('`threshold` must be a finite number')).toBe('threshold');
    expect(fieldOf('alert_rules is 100')).toBeNull();
  });
});

describe('parsePairs', () => {
  it('reads name=value pairs separated by commas or lines', () => {
    expect(parsePairs('severity=page, team = web\nx=')).toEqual({
      severity: 'page',
      team: 'web',
      x: '',
    });
    expect(parsePairs('  ')).toEqual({});
    expect(parsePairs('oops')).toBe('“oops” is not name=value');
  });
});
