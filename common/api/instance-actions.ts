// Nova's @check_instance_state as a table at the door: which vm and task states allow each
// action on an Instance. The operator checks resize and migrate requests against it before
// anything starts; the agent checks power actions against it before it changes the task.
import type { Instance, TaskState, VmState } from './types.js';

export type InstanceAction = 'resize' | 'migrate' | 'evacuate' | 'stop' | 'start' | 'delete';

export interface ActionGuard {
  /** vm states the action is allowed in; 'any' for every state. */
  vmStates: readonly VmState[] | 'any';
  /** task states the action is allowed in ('' = no task running); 'any' for every state. */
  taskStates: readonly (TaskState | '')[] | 'any';
  /** How a refusal names the action, e.g. "resized or migrated". */
  verb: string;
}

export const INSTANCE_ACTIONS = {
  resize: { vmStates: ['active', 'stopped'], taskStates: [''], verb: 'resized' },
  migrate: { vmStates: ['active', 'stopped'], taskStates: [''], verb: 'resized or migrated' },
  // Nova evacuates an instance in error too: its host is gone, whatever it said last.
  evacuate: { vmStates: ['active', 'stopped', 'error'], taskStates: [''], verb: 'evacuated' },
  stop: { vmStates: ['active'], taskStates: [''], verb: 'stopped' },
  start: { vmStates: ['stopped'], taskStates: [''], verb: 'started' },
  // Nova lets a delete through in any state: the finalizer waits for every host to clean up.
  delete: { vmStates: 'any', taskStates: 'any', verb: 'deleted' },
} as const satisfies Record<InstanceAction, ActionGuard>;

export type Check = { ok: true } | { ok: false; message: string };
export const OK: Check = { ok: true };
export const refuse = (message: string): Check => ({ ok: false, message });

/**
 * Whether the instance's state allows the action. `ownTask` names a Migration that already
 * holds the instance: its own task does not block it (a step repeated after a crash).
 */
export function checkInstanceState(inst: Instance, action: InstanceAction, ownTask?: string): Check {
  const guard: ActionGuard = INSTANCE_ACTIONS[action];
  const s = inst.status ?? {};
  const name = inst.metadata.name;
  const own = ownTask !== undefined && s.migration === ownTask;
  if (own) return OK;
  if (s.migration) {
    return refuse(
      `instance ${name} already has migration ${s.migration} in progress; confirm, revert or wait for it first`,
    );
  }
  const task = s.taskState ?? '';
  if (guard.taskStates !== 'any' && !guard.taskStates.includes(task)) {
    return refuse(`instance ${name} is busy with task ${task}; wait until status.taskState is empty and try again`);
  }
  if (guard.vmStates !== 'any' && !(s.vmState && guard.vmStates.includes(s.vmState))) {
    const allowed = guard.vmStates.join(' or ');
    return refuse(
      `instance ${name} is ${s.vmState ?? 'not yet built'}; only ${allowed} instances can be ${guard.verb}`,
    );
  }
  return OK;
}
