// The migration controller and its parts, built once for the operator and its tests alike.
import type { KubeClient, WatchedCache } from '../../common/kube/api.js';
import type { EventRecorder } from '../../common/kube/events.js';
import type { FaultRecorder } from '../../common/kube/fault-recorder.js';
import type { Logger } from '../../common/log.js';
import type { QuotaService } from '../quota/quota-service.js';
import type { PlacementAttempts } from '../scheduler/attempts.js';
import type { Placement } from '../scheduler/placement.js';
import type { ServerGroups } from '../servergroups/membership.js';
import { HostRouting } from '../host-routing.js';
import { MigrationCancel } from './cancel.js';
import { MigrationController } from './controller.js';
import { Decisions } from './decision.js';
import { DestinationPlacement } from './destination.js';
import { MigrationEnding } from './ending.js';
import { MigrationQuota } from './quota.js';
import { MigrationSettlement } from './settle.js';
import { MigrationStart } from './start.js';
import { StepGuard } from './step-guard.js';
import { TransferTokens } from './transfer-token.js';

export interface MigrationWiring {
  kube: KubeClient;
  caches: {
    migrations: WatchedCache<'Migration'>;
    instances: WatchedCache<'Instance'>;
    nodes: WatchedCache<'ComputeNode'>;
    flavors: WatchedCache<'Flavor'>;
  };
  placement: Placement;
  attempts: PlacementAttempts;
  groups: ServerGroups;
  quota: QuotaService;
  events: EventRecorder;
  faults: FaultRecorder;
  config: {
    allowResizeToSameHost: boolean;
    resizeConfirmWindowSeconds: number;
    stepTimeoutMs: number;
    /** Where transfer credentials live (default kubenova-system). */
    releaseNamespace?: string;
    /** A fixed credential lifetime; 0 or absent: derived from the step deadlines. */
    transferCredentialTtlMs?: number;
  };
  log: Logger;
  now?: () => Date;
}

/** Where credentials live when no release namespace is configured (the chart's usual namespace). */
export const DEFAULT_RELEASE_NAMESPACE = 'kubenova-system';

export function migrationController(w: MigrationWiring): {
  controller: MigrationController;
  decisions: Decisions;
  tokens: TransferTokens;
} {
  const { kube, caches, placement, events, faults, config, log } = w;
  const now = w.now ?? (() => new Date());
  const quota = new MigrationQuota(w.quota);
  const tokens = new TransferTokens(
    kube.secrets,
    {
      namespace: config.releaseNamespace ?? DEFAULT_RELEASE_NAMESPACE,
      stepTimeoutMs: config.stepTimeoutMs,
      ttlMs: config.transferCredentialTtlMs,
    },
    now,
  );
  const ending = new MigrationEnding(kube, quota, faults, log);
  const decisions = new Decisions(
    kube,
    quota,
    tokens,
    events,
    config.resizeConfirmWindowSeconds,
    config.stepTimeoutMs,
    log,
    now,
  );
  const settlement = new MigrationSettlement(kube, placement, quota, tokens, events, now);
  const controller = new MigrationController(
    caches.migrations,
    caches.instances,
    caches.nodes,
    new MigrationStart(kube, caches.flavors, placement, w.quota, events, faults, config, log, now),
    new DestinationPlacement(kube, w.attempts, w.groups, ending, tokens, events, config, log, now),
    decisions,
    settlement,
    new StepGuard(kube, placement, ending, decisions, events, faults, config.stepTimeoutMs, log, now),
    new MigrationCancel(kube, placement, quota, settlement, events, log, now),
    new HostRouting(kube, log),
  );
  return { controller, decisions, tokens };
}
