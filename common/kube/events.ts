// Kubernetes Events on kubenova objects, so `kubectl describe` tells the story of a task.
import { randomBytes } from 'node:crypto';
import type { CoreV1Event } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { API_VERSION } from '../api/types.js';
import type { EventReason } from '../api/reasons.js';
import type { EventSink } from './api.js';

export interface EventTarget {
  kind: string;
  metadata: { name: string; namespace?: string; uid?: string; resourceVersion?: string };
}

export class EventRecorder {
  constructor(
    private readonly sink: EventSink,
    private readonly component: string,
    private readonly host: string | undefined,
    private readonly log: Logger,
  ) {}

  /** Fire and forget: an Event that cannot be written must not fail the step it reports. */
  record(target: EventTarget, type: 'Normal' | 'Warning', reason: EventReason, message: string): void {
    const namespace = target.metadata.namespace ?? 'default';
    const now = new Date();
    const event: CoreV1Event = {
      metadata: {
        name: `${target.metadata.name}.${now.getTime().toString(16)}${randomBytes(3).toString('hex')}`,
        namespace,
      },
      involvedObject: {
        apiVersion: API_VERSION,
        kind: target.kind,
        name: target.metadata.name,
        namespace: target.metadata.namespace,
        uid: target.metadata.uid,
        resourceVersion: target.metadata.resourceVersion,
      },
      reason,
      message: message.slice(0, 1024),
      type,
      source: { component: this.component, host: this.host },
      reportingComponent: `kubenova.io/${this.component}`,
      reportingInstance: this.host ?? this.component,
      firstTimestamp: now,
      lastTimestamp: now,
      count: 1,
    };
    this.sink.create(namespace, event).catch((err: unknown) => {
      this.log.debug({ err: (err as Error).message, reason }, 'could not record event');
    });
  }
}
