// The one place a failure becomes what users see: status.fault on the object (written by the
// caller's own status patch, so it lands with the state it belongs to), a Warning Event whose
// reason follows from the fault reason (EVENT_FOR_FAULT), and a log line.
import { EVENT_FOR_FAULT, type Fault, type FaultStatus } from '../api/faults.js';
import type { Logger } from '../log.js';
import type { EventRecorder, EventTarget } from './events.js';

export interface FaultNotice {
  target: EventTarget;
  /** What this object's Event says; the fault's own message when left out. */
  message?: string;
}

export class FaultRecorder {
  constructor(
    private readonly events: EventRecorder,
    private readonly now: () => Date = () => new Date(),
  ) {}

  /** status.fault for this failure, stamped now. */
  status(fault: Fault): FaultStatus {
    return { reason: fault.reason, message: fault.message, time: this.now().toISOString() };
  }

  /**
   * Writes the fault through `write` (the caller's status patch including it), then tells
   * every object in `notify` with one Warning Event each. Nothing is announced for a fault
   * that could not be written: the step will run again.
   */
  async record(
    fault: Fault,
    write: (status: FaultStatus) => Promise<unknown>,
    notify: readonly FaultNotice[],
    log: Logger,
    step: string,
  ): Promise<void> {
    await write(this.status(fault));
    log.warn({ reason: fault.reason, step }, fault.message);
    for (const { target, message } of notify) {
      this.events.record(target, 'Warning', EVENT_FOR_FAULT[fault.reason], message ?? fault.message);
    }
  }
}
