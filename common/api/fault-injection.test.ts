import { describe, expect, it } from 'vitest';
import { failingStepsOn, injectedFailureMessage, parseFailAnnotation } from './fault-injection.js';

describe('fake.kubenova.io/fail', () => {
  it('reads every known step, on every host or on one host, ignoring spaces and empty entries', () =>
    expect(parseFailAnnotation(' spawn, migrate-out ,,finish-migration@node-a,revert,power-on ')).toEqual({
      rules: [
        { step: 'spawn' },
        { step: 'migrate-out' },
        { step: 'finish-migration', host: 'node-a' },
        { step: 'revert' },
        { step: 'power-on' },
      ],
      unknown: [],
    }));

  it('sets aside unknown step names and an empty host instead of failing anything for them', () =>
    expect(parseFailAnnotation('spwan,spawn@,Spawn,power-on')).toEqual({
      rules: [{ step: 'power-on' }],
      unknown: ['spwan', 'spawn@', 'Spawn'],
    }));

  it('an absent or empty annotation fails nothing', () => {
    expect(parseFailAnnotation(undefined)).toEqual({ rules: [], unknown: [] });
    expect(parseFailAnnotation('')).toEqual({ rules: [], unknown: [] });
  });

  it('a step with a host fails only on that host; one without fails everywhere', () => {
    const { rules } = parseFailAnnotation('spawn@node-a,power-on');
    expect([...failingStepsOn(rules, 'node-a')].sort()).toEqual(['power-on', 'spawn']);
    expect([...failingStepsOn(rules, 'node-b')]).toEqual(['power-on']);
  });

  it('the failure message says it was injected by the annotation', () =>
    expect(injectedFailureMessage('spawn')).toBe(
      "injected failure: the instance's annotation fake.kubenova.io/fail makes spawn fail",
    ));
});
