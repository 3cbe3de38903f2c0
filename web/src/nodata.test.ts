import { describe, expect, it } from 'vitest';
import { closestValues, describeFilter, filterSuggestions } from './nodata';

describe('closestValues', () => {
  const regions = ['ap-south', 'eu-west', 'us-east', 'us-west', 'us-east-2'];

  it('matches case-insensitively, prefixes first, then by edit distance, at most 3', () => {
    expect(closestValues('US-East', regions)).toEqual(['us-east', 'us-east-2', 'us-west']);
    expect(closestValues('us', regions)).toEqual(['us-east', 'us-west', 'us-east-2']);
    expect(closestValues('eu-wset', regions)).toEqual(['eu-west']);
  });

  it('offers nothing unrelated', () => {
    expect(closestValues('zzzzzz', regions)).toEqual([]);
    expect(closestValues('x', [])).toEqual([]);
  });
});

describe('filterSuggestions', () => {
  it('names each filter value that matches nothing with its closest existing values', () => {
    const known = { region: ['us-east', 'eu-west'], plan: ['pro', 'free'] };
    expect(filterSuggestions({ region: 'US-East', plan: 'pro' }, known)).toEqual([
      { dimension: 'region', wanted: 'US-East', closest: ['us-east'] },
    ]);
    expect(filterSuggestions({ tier: 'gold' }, known)).toEqual([
      { dimension: 'tier', wanted: 'gold', closest: [] },
    ]);
    expect(describeFilter({ region: 'US-East', plan: 'pro' })).toBe('region=US-East, plan=pro');
  });
});
