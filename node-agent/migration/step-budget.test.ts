import { describe, expect, it } from 'vitest';
import { ApiException } from '@kubernetes/client-node';
import { FaultReason } from '../../common/api/reasons.js';
import { StepBudget } from './step-budget.js';

describe('a step retry budget', () => {
  it('gives up on the third failure of a step with a fault naming the step, host and cause', () => {
    const budget = new StepBudget(3);
    const disk = new Error('no space left on device');
    expect(budget.failed('m1', 'migrating', 'node-a', disk)).toBeUndefined();
    expect(budget.failed('m1', 'migrating', 'node-a', disk)).toBeUndefined();
    const fault = budget.failed('m1', 'migrating', 'node-a', disk);
    expect(fault?.reason).toBe(FaultReason.StepFailed);
    expect(fault?.message).toBe('migrating on node-a failed 3 times: no space left on device');
  });

  it('does not count API errors: the step deadline bounds those', () => {
    const budget = new StepBudget(1);
    expect(budget.failed('m1', 'migrating', 'node-a', new ApiException(500, 'etcd down', '', {}))).toBeUndefined();
  });

  it('starts the count again when the step goes through or the phase moves on', () => {
    const budget = new StepBudget(2);
    const err = new Error('busy');
    budget.failed('m1', 'migrating', 'node-a', err);
    budget.succeeded('m1');
    expect(budget.failed('m1', 'migrating', 'node-a', err)).toBeUndefined();
    expect(budget.failed('m1', 'post-migrating', 'node-a', err)).toBeUndefined();
    expect(budget.failed('m1', 'post-migrating', 'node-a', err)).toBeDefined();
  });
});
