import type { Condition } from './types.js';
import { compareCodeUnits } from '../order.js';

export interface ConditionInput {
  type: string;
  status: 'True' | 'False' | 'Unknown';
  reason: string;
  message?: string;
}

/**
 * Returns the list with the condition set; lastTransitionTime changes only when the
 * status does, as the API conventions require. `observedGeneration` is the
 * .metadata.generation of the object the condition was judged from; without it the
 * condition carries none (an older one is not kept, as it would no longer be true).
 */
export function setCondition(
  list: Condition[] | undefined,
  input: ConditionInput,
  now: Date,
  observedGeneration?: number,
): Condition[] {
  const existing = (list ?? []).find((c) => c.type === input.type);
  const next: Condition = {
    type: input.type,
    status: input.status,
    reason: input.reason,
    message: input.message ?? '',
    lastTransitionTime: existing && existing.status === input.status ? existing.lastTransitionTime : now.toISOString(),
  };
  if (observedGeneration !== undefined) next.observedGeneration = observedGeneration;
  return [...(list ?? []).filter((c) => c.type !== input.type), next].sort((a, b) => compareCodeUnits(a.type, b.type));
}

export function getCondition(list: Condition[] | undefined, type: string): Condition | undefined {
  return list?.find((c) => c.type === type);
}

/**
 * The Instance's Ready condition (what `kubectl wait --for=condition=Ready` reads): True with
 * reason Running while the guest runs, False with `reason` (Stopped unless said) otherwise;
 * `observedGeneration` as for setCondition.
 */
export function setReady(
  list: Condition[] | undefined,
  running: boolean,
  message: string,
  now: Date,
  reason = running ? 'Running' : 'Stopped',
  observedGeneration?: number,
): Condition[] {
  const status = running ? 'True' : 'False';
  return setCondition(list, { type: 'Ready', status, reason, message }, now, observedGeneration);
}
