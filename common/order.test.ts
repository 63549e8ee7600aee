import { describe, expect, it } from 'vitest';
import { compareCodeUnits } from './order.js';

describe('compareCodeUnits', () => {
  it('orders by code unit, capitals first, the same in every locale', () => {
    expect(['b', 'a', 'B', 'A', 'ä'].sort(compareCodeUnits)).toEqual(['A', 'B', 'a', 'b', 'ä']);
  });

  it('says equal strings are equal', () => {
    expect(compareCodeUnits('Ready', 'Ready')).toBe(0);
  });
});
