import { describe, expect, it } from 'vitest';
import { setCondition, setReady } from './conditions.js';

describe('conditions', () => {
  const t1 = new Date('2026-01-01T00:00:00Z');
  const t2 = new Date('2026-01-01T00:01:00Z');

  it('keeps lastTransitionTime while the status stays the same', () => {
    const first = setCondition([], { type: 'Ready', status: 'True', reason: 'Running' }, t1);
    const second = setCondition(first, { type: 'Ready', status: 'True', reason: 'Running', message: 'still' }, t2);
    expect(second[0]?.lastTransitionTime).toBe(t1.toISOString());
    expect(second[0]?.message).toBe('still');
  });

  it('moves lastTransitionTime when the status changes and keeps other condition types', () => {
    const list = setCondition(
      setCondition([], { type: 'Scheduled', status: 'True', reason: 'Scheduled' }, t1),
      { type: 'Ready', status: 'True', reason: 'Running' },
      t1,
    );
    const next = setCondition(list, { type: 'Ready', status: 'False', reason: 'Stopped' }, t2);
    expect(next.map((c) => c.type)).toEqual(['Ready', 'Scheduled']);
    expect(next.find((c) => c.type === 'Ready')?.lastTransitionTime).toBe(t2.toISOString());
  });

  it('records the generation a condition was judged from, and drops it when a writer does not say', () => {
    const ready = setReady([], true, 'running on node-a', t1, undefined, 3);
    expect(ready).toEqual([
      {
        type: 'Ready',
        status: 'True',
        reason: 'Running',
        message: 'running on node-a',
        lastTransitionTime: t1.toISOString(),
        observedGeneration: 3,
      },
    ]);
    const stopped = setReady(ready, false, 'stopped', t2, 'Stopped', 4);
    expect(stopped[0]).toMatchObject({ status: 'False', reason: 'Stopped', observedGeneration: 4 });
    expect(setCondition(stopped, { type: 'Ready', status: 'False', reason: 'Stopped' }, t2)[0]).not.toHaveProperty(
      'observedGeneration',
    );
  });
});
