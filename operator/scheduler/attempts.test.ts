import { describe, expect, it } from 'vitest';
import { placementStep } from './attempts.js';

const up = () => true;
const down = () => false;

describe('placement step', () => {
  it('schedules when nothing was chosen yet', () => expect(placementStep(undefined, up, 'instance')).toEqual({ next: 'schedule' }));
  it('waits for the chosen host\'s agent while the host is alive', () => expect(placementStep({ attempts: 1, selectedHost: 'a' }, up, 'instance')).toEqual({ next: 'wait' }));
  it('retries after a failed claim of the current attempt, with the agent\'s reason', () =>
    expect(placementStep({ attempts: 1, selectedHost: 'a', claimFailure: { host: 'a', attempt: 1, message: 'free vcpus 0 < requested 2' } }, up, 'instance')).toEqual({ next: 'retry', host: 'a', reason: 'free vcpus 0 < requested 2' }));
  it('ignores the failure of an earlier attempt', () =>
    expect(placementStep({ attempts: 2, selectedHost: 'b', claimFailure: { host: 'a', attempt: 1, message: 'x' } }, up, 'instance')).toEqual({ next: 'wait' }));
  it('retries when the chosen host went silent before claiming', () =>
    expect(placementStep({ attempts: 1, selectedHost: 'a' }, down, 'migration')).toEqual({ next: 'retry', host: 'a', reason: 'host a stopped responding before it claimed the migration' }));
});
