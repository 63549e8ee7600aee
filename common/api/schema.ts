// The one source of truth for the kubenova API. `npm run gen` turns these definitions
// into the CRD manifests in crds/ and the TypeScript types in types.generated.ts; a test
// regenerates both and fails when the committed files drift from this file.
//
// The schemas are plain OpenAPI v3 (structural, as CRDs require). `title` names the
// TypeScript type an object becomes; the generator keeps it out of nothing — the API
// server accepts `title` — so the CRDs stay valid as written here.

export const GROUP = 'compute.kubenova.io';
export const VERSION = 'v1alpha1';
export const API_VERSION = `${GROUP}/${VERSION}`;

export interface JSONSchema {
  type?: 'object' | 'string' | 'integer' | 'number' | 'boolean' | 'array';
  title?: string;
  description?: string;
  properties?: Record<string, JSONSchema>;
  required?: string[];
  items?: JSONSchema;
  additionalProperties?: JSONSchema;
  enum?: (string | number)[];
  default?: unknown;
  minimum?: number;
  maximum?: number;
  minLength?: number;
  maxLength?: number;
  maxItems?: number;
  maxProperties?: number;
  pattern?: string;
  format?: string;
  nullable?: boolean;
  'x-kubernetes-list-type'?: 'atomic' | 'set' | 'map';
  'x-kubernetes-list-map-keys'?: string[];
  'x-kubernetes-map-type'?: 'atomic' | 'granular';
  'x-kubernetes-preserve-unknown-fields'?: boolean;
  'x-kubernetes-validations'?: {
    rule: string;
    message?: string;
    messageExpression?: string;
    reason?: string;
    fieldPath?: string;
  }[];
}

export interface PrinterColumn {
  name: string;
  type: 'string' | 'integer' | 'number' | 'boolean' | 'date';
  jsonPath: string;
  description?: string;
  priority?: number;
}

export interface KindDefinition {
  kind: string;
  plural: string;
  singular: string;
  shortNames: string[];
  scope: 'Namespaced' | 'Cluster';
  description: string;
  printerColumns: PrinterColumn[];
  spec: JSONSchema;
  status: JSONSchema;
  /** Rules on the whole object, for checks that need both spec and status. */
  rootValidations?: JSONSchema['x-kubernetes-validations'];
  /** Categories besides `kubenova` (which every kind is in), e.g. `all` for `kubectl get all`. */
  categories?: string[];
  /**
   * Scalar fields a list or watch may filter on with a field selector (CRD selectableFields):
   * each node agent watches only the objects that name its host in one of them.
   */
  selectableFields?: string[];
}

// Kubernetes object names in the API are DNS-1123 subdomains; checking the shape here
// gives the user the error at apply time instead of a NoValidHost later.
const DNS_SUBDOMAIN = '^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$';

const name = (description: string): JSONSchema => ({
  type: 'string',
  description,
  maxLength: 253,
  pattern: DNS_SUBDOMAIN,
});

const time = (description: string): JSONSchema => ({ type: 'string', format: 'date-time', description });

const count = (description: string, minimum = 0): JSONSchema => ({ type: 'integer', minimum, description });

const conditions: JSONSchema = {
  type: 'array',
  description: "Observations of the object's state, in the Kubernetes API-conventions form.",
  maxItems: 16,
  'x-kubernetes-list-type': 'map',
  'x-kubernetes-list-map-keys': ['type'],
  items: {
    type: 'object',
    title: 'Condition',
    required: ['type', 'status', 'reason', 'lastTransitionTime'],
    properties: {
      type: { type: 'string', maxLength: 64, description: 'Condition type, e.g. Ready or Scheduled.' },
      status: {
        type: 'string',
        enum: ['True', 'False', 'Unknown'],
        description: 'Whether the condition holds: True, False or Unknown.',
      },
      reason: { type: 'string', maxLength: 128, description: 'CamelCase machine-readable reason.' },
      message: { type: 'string', maxLength: 4096, description: 'Human-readable details.' },
      lastTransitionTime: time('When status last changed.'),
      observedGeneration: count('The .metadata.generation the condition was set from.'),
    },
  },
};

const fault: JSONSchema = {
  type: 'object',
  title: 'Fault',
  description: 'The last failure, as Nova records instance faults.',
  required: ['reason', 'message'],
  properties: {
    reason: {
      type: 'string',
      maxLength: 128,
      description: 'CamelCase reason, e.g. NoValidHost, ClaimFailed, FlavorNotFound.',
    },
    message: { type: 'string', maxLength: 8192, description: 'What went wrong and what to do about it.' },
    time: time('When the fault was recorded.'),
  },
};

const flavorSnapshot = (description: string): JSONSchema => ({
  type: 'object',
  title: 'FlavorSnapshot',
  description,
  required: ['name', 'vcpus', 'memoryMiB', 'rootDiskGiB', 'ephemeralDiskGiB'],
  properties: {
    name: { type: 'string', maxLength: 253, description: 'Name of the Flavor the sizes were taken from.' },
    vcpus: count('Virtual CPUs.', 1),
    memoryMiB: count('Memory in MiB.', 64),
    rootDiskGiB: count('Root disk in GiB.'),
    ephemeralDiskGiB: count('Ephemeral disk in GiB.'),
    extraSpecs: {
      type: 'object',
      description: "The Flavor's extra specs as they were when the sizes were taken.",
      additionalProperties: { type: 'string' },
    },
  },
});

const scheduling = (description: string): JSONSchema => ({
  type: 'object',
  title: 'SchedulingStatus',
  description,
  properties: {
    attempts: count("Placement attempts made so far (Nova's retry count)."),
    triedHosts: {
      type: 'array',
      description: 'Hosts already tried; the scheduler does not pick them again.',
      maxItems: 64,
      'x-kubernetes-list-type': 'atomic',
      items: { type: 'string', maxLength: 253 },
    },
    selectedHost: {
      type: 'string',
      maxLength: 253,
      description:
        "The host the scheduler chose for the current attempt; that host's agent claims it. On an Instance, every write that places it on a host (status.host) names that host here too, so its host's agent finds it with one field selector. On a Migration it stays equal to destHost once that is set, to the end, so a destination's agent finds it with the same one.",
    },
    claimFailure: {
      type: 'object',
      title: 'ClaimFailure',
      description:
        'Written by the agent of selectedHost when its claim, or the spawn after it, failed; the conductor then reschedules.',
      required: ['host', 'attempt', 'message'],
      properties: {
        host: { type: 'string', maxLength: 253, description: 'The host whose claim or spawn failed.' },
        attempt: count('The attempt whose claim failed.'),
        reason: {
          type: 'string',
          enum: ['ClaimFailed', 'SpawnFailed'],
          description: 'What failed: the claim (ClaimFailed, also when absent) or the spawn after it (SpawnFailed).',
        },
        message: { type: 'string', maxLength: 4096, description: 'Why it failed, as the agent reported it.' },
      },
    },
    failures: {
      type: 'array',
      description:
        'Every failed attempt so far, oldest first, written by the conductor as it retries; the final fault lists them.',
      maxItems: 64,
      'x-kubernetes-list-type': 'atomic',
      items: {
        type: 'object',
        title: 'PlacementFailure',
        required: ['host', 'attempt', 'message'],
        properties: {
          host: { type: 'string', maxLength: 253, description: 'The host tried in that attempt.' },
          attempt: count('The attempt that failed.'),
          reason: { type: 'string', enum: ['ClaimFailed', 'SpawnFailed'], description: 'As in claimFailure.' },
          message: { type: 'string', maxLength: 4096, description: 'Why it failed there.' },
        },
      },
    },
  },
});

const resources = (title: string, description: string): JSONSchema => ({
  type: 'object',
  title,
  description,
  properties: {
    vcpus: count('Virtual CPUs.'),
    memoryMiB: count('Memory in MiB.'),
    diskGiB: count('Disk in GiB.'),
  },
});

// The API server compares a whole-number value with a fractional minimum after
// truncating the minimum, so `minimum: 0.01` alone would let 0 through; CEL says it.
const ratio = (defaultValue: number, description: string): JSONSchema => ({
  type: 'number',
  description,
  minimum: 0,
  maximum: 1000,
  default: defaultValue,
  'x-kubernetes-validations': [
    { rule: 'self > 0.0', message: 'allocation ratios must be greater than 0 (1.0 means no overcommit)' },
  ],
});

export const flavor: KindDefinition = {
  kind: 'Flavor',
  plural: 'flavors',
  singular: 'flavor',
  shortNames: ['flv'],
  scope: 'Cluster',
  description:
    'A Flavor is a virtual hardware template (Nova flavor): vCPUs, memory and disks. Flavors are immutable; make a new one to change sizes.',
  printerColumns: [
    { name: 'VCPUS', type: 'integer', jsonPath: '.spec.vcpus' },
    { name: 'MEMORY', type: 'integer', jsonPath: '.spec.memoryMiB', description: 'Memory in MiB' },
    { name: 'DISK', type: 'integer', jsonPath: '.spec.rootDiskGiB', description: 'Root disk in GiB' },
    { name: 'DISABLED', type: 'boolean', jsonPath: '.spec.disabled', priority: 1 },
    { name: 'AGE', type: 'date', jsonPath: '.metadata.creationTimestamp' },
  ],
  spec: {
    type: 'object',
    title: 'FlavorSpec',
    description: 'The virtual hardware: vCPUs, memory, disks, and extra specs that steer placement. Immutable.',
    required: ['vcpus', 'memoryMiB', 'rootDiskGiB'],
    'x-kubernetes-validations': [
      {
        rule: 'self == oldSelf',
        message:
          'Flavor spec is immutable, as Nova flavors are: create a new Flavor with the sizes you want and resize instances to it.',
      },
    ],
    properties: {
      vcpus: count('Virtual CPUs, at least 1.', 1),
      memoryMiB: count('Memory in MiB, at least 64.', 64),
      rootDiskGiB: count('Root disk in GiB; 0 means the image size (no resize to 0 from a sized disk).'),
      ephemeralDiskGiB: { ...count('Ephemeral disk in GiB.'), default: 0 },
      extraSpecs: {
        type: 'object',
        description:
          'Extra specs. "node:<label>": "<value>" places instances only on ComputeNodes with that label value.',
        maxProperties: 64,
        additionalProperties: { type: 'string', maxLength: 1024 },
      },
      disabled: { type: 'boolean', default: false, description: 'A disabled flavor cannot be booted or resized to.' },
    },
  },
  status: {
    type: 'object',
    title: 'FlavorStatus',
    description: 'Unused: a Flavor is a template and has no observed state.',
    properties: {},
  },
};

const VM_STATES = ['building', 'active', 'stopped', 'resized', 'error', 'deleted'] as const;
const TASK_STATES = [
  '',
  'scheduling',
  'spawning',
  'resize_prep',
  'resize_migrating',
  'resize_migrated',
  'resize_finish',
  'resize_reverting',
  'resize_confirming',
  'powering_off',
  'powering_on',
  'deleting',
] as const;
const POWER_STATES = ['running', 'shutdown', 'nostate', 'crashed'] as const;

export const instance: KindDefinition = {
  kind: 'Instance',
  plural: 'instances',
  singular: 'instance',
  shortNames: ['inst'],
  scope: 'Namespaced',
  description:
    'An Instance is a virtual machine (Nova server). Change spec.flavor to resize it, spec.powerState to stop or start it.',
  printerColumns: [
    { name: 'STATUS', type: 'string', jsonPath: '.status.vmState' },
    { name: 'TASK', type: 'string', jsonPath: '.status.taskState' },
    { name: 'FLAVOR', type: 'string', jsonPath: '.status.flavor.name' },
    { name: 'HOST', type: 'string', jsonPath: '.status.host' },
    { name: 'POWER', type: 'string', jsonPath: '.status.powerState' },
    {
      name: 'READY',
      type: 'string',
      jsonPath: ".status.conditions[?(@.type=='Ready')].status",
      description: 'The Ready condition: True while the guest runs',
    },
    {
      name: 'IP',
      type: 'string',
      jsonPath: '.status.networks[0].ip',
      description: 'The fixed IP of the first port',
      priority: 1,
    },
    { name: 'AGE', type: 'date', jsonPath: '.metadata.creationTimestamp' },
  ],
  categories: ['all'],
  // selectedHost: a node agent's one Instance watch (the host asked to claim it, or running it);
  // status.host: for people and tools asking what runs on a host.
  selectableFields: ['.status.host', '.status.scheduling.selectedHost'],
  rootValidations: [
    {
      rule: "!has(oldSelf.status) || !has(oldSelf.status.taskState) || oldSelf.status.taskState == '' || self.spec.flavor == oldSelf.spec.flavor",
      messageExpression:
        "'spec.flavor cannot change while task ' + oldSelf.status.taskState + ' is running; wait until status.taskState is empty (kubectl get inst ' + self.metadata.name + ') and try again'",
      reason: 'FieldValueForbidden',
    },
  ],
  spec: {
    type: 'object',
    title: 'InstanceSpec',
    description: 'The virtual machine wanted: its flavor, image, power state and where it may run.',
    required: ['flavor', 'image'],
    properties: {
      flavor: name('Name of the Flavor wanted. Change it to request a resize.'),
      image: {
        type: 'string',
        minLength: 1,
        maxLength: 1024,
        description: 'Image reference, interpreted by the driver (e.g. cirros, tiny).',
      },
      powerState: {
        type: 'string',
        enum: ['Running', 'Stopped'],
        default: 'Running',
        description: 'Desired power state: Running or Stopped.',
      },
      availabilityZone: {
        type: 'string',
        maxLength: 63,
        description: 'Place only on ComputeNodes labelled topology.kubernetes.io/zone=<this>.',
      },
      host: {
        type: 'string',
        maxLength: 253,
        description: "Forced host (admin): bypasses the scheduler filters but not the host's claim.",
      },
      serverGroup: {
        ...name('ServerGroup (in this namespace) the instance joins; its policy steers placement. Immutable.'),
      },
      networks: {
        type: 'array',
        description:
          'Networks to attach, one Port each (Nova --nic net-id). Omitted: the Network marked spec.default, if an admin marked one; an empty list: no network. Immutable: interfaces are attached when the instance is created.',
        maxItems: 8,
        'x-kubernetes-list-type': 'map',
        'x-kubernetes-list-map-keys': ['network'],
        items: {
          type: 'object',
          title: 'NetworkRequest',
          required: ['network'],
          properties: { network: name('Name of the Network (cluster-scoped) to attach.') },
        },
      },
      evacuationPolicy: {
        type: 'string',
        enum: ['Manual', 'Automatic'],
        default: 'Manual',
        description:
          'Automatic: once its host is forced down (ComputeNode spec.forcedDown), the operator rebuilds the instance on another host from its image by itself. Manual: an admin creates an Evacuation Migration.',
      },
    },
    'x-kubernetes-validations': [
      {
        rule: "(has(self.serverGroup) ? self.serverGroup : '') == (has(oldSelf.serverGroup) ? oldSelf.serverGroup : '')",
        message: 'spec.serverGroup is immutable: an instance joins its server group when it is created',
      },
      {
        rule: '(has(self.networks) ? self.networks : []) == (has(oldSelf.networks) ? oldSelf.networks : []) && has(self.networks) == has(oldSelf.networks)',
        message:
          'spec.networks is immutable: an instance gets its ports when it is created; create a new instance with the networks you want',
      },
    ],
  },
  status: {
    type: 'object',
    title: 'InstanceStatus',
    description:
      "What the operator and the host's agent have done and observe (Nova vm_state, task_state, power_state).",
    properties: {
      vmState: { type: 'string', enum: [...VM_STATES], description: 'Stable state (Nova vm_state).' },
      taskState: {
        type: 'string',
        enum: [...TASK_STATES],
        description: 'The task in progress, empty when none (Nova task_state).',
      },
      powerState: { type: 'string', enum: [...POWER_STATES], description: 'Power state observed by the driver.' },
      host: {
        type: 'string',
        maxLength: 253,
        description: 'Where the instance runs; set only after a successful claim.',
      },
      flavor: flavorSnapshot('The flavor applied to the instance.'),
      oldFlavor: flavorSnapshot('The previous flavor while a resize awaits confirm or revert.'),
      migration: { type: 'string', maxLength: 253, description: 'The active Migration, if any.' },
      taskHosts: {
        type: 'array',
        description:
          'Hosts taking part in the current migration (source and destination); their agents may write this status.',
        maxItems: 2,
        'x-kubernetes-list-type': 'atomic',
        items: { type: 'string', maxLength: 253 },
      },
      launchedAt: time('When the guest was first started.'),
      fault: fault,
      scheduling: scheduling('Placement attempts for the current boot.'),
      guest: {
        type: 'object',
        title: 'GuestReport',
        description: 'What the guest itself reports about its hardware.',
        properties: {
          vcpus: count('Virtual CPUs the guest sees.'),
          memoryKiB: count('Memory the guest sees, in KiB.'),
          diskBytes: count('Size of the root disk the guest sees, in bytes.'),
          marker: {
            type: 'string',
            maxLength: 256,
            description:
              'Written by the guest at its first boot and kept since: a new marker means the guest was recreated, not restarted or moved.',
          },
          ips: {
            type: 'array',
            description: 'IP addresses the guest sees on its interfaces, from inside (loopback left out).',
            maxItems: 32,
            'x-kubernetes-list-type': 'atomic',
            items: { type: 'string', maxLength: 64 },
          },
          reportedAt: time('When the guest reported.'),
        },
      },
      networks: {
        type: 'array',
        description:
          "The instance's ports, one per attached network, written by the operator once each Port exists (before the host is chosen).",
        maxItems: 8,
        'x-kubernetes-list-type': 'atomic',
        items: {
          type: 'object',
          title: 'AttachedNetwork',
          required: ['network', 'port', 'ip', 'mac'],
          properties: {
            network: { type: 'string', maxLength: 253, description: 'Name of the Network.' },
            port: {
              type: 'string',
              maxLength: 253,
              description: 'Name of the Port (in the namespace of the instance).',
            },
            ip: { type: 'string', maxLength: 64, description: "The port's fixed IP address on the network." },
            mac: { type: 'string', maxLength: 17, description: "The port's MAC address." },
          },
        },
      },
      conditions,
      observedGeneration: count('The .metadata.generation last acted on.'),
    },
  },
};

export const MIGRATION_STATUSES = [
  'pre-migrating',
  'migrating',
  'post-migrating',
  'finished',
  'confirming',
  'confirmed',
  'reverting',
  'reverted',
  'error',
] as const;

export const migration: KindDefinition = {
  kind: 'Migration',
  plural: 'migrations',
  singular: 'migration',
  shortNames: ['mig'],
  scope: 'Namespaced',
  description:
    'A Migration moves an Instance to another host (cold migration) or to another flavor (resize). Patch spec.decision to Confirm or Revert once status is finished.',
  printerColumns: [
    { name: 'INSTANCE', type: 'string', jsonPath: '.spec.instance' },
    { name: 'TYPE', type: 'string', jsonPath: '.status.type' },
    { name: 'STATUS', type: 'string', jsonPath: '.status.status' },
    { name: 'SOURCE', type: 'string', jsonPath: '.status.sourceHost' },
    { name: 'DEST', type: 'string', jsonPath: '.status.destHost' },
    { name: 'AGE', type: 'date', jsonPath: '.metadata.creationTimestamp' },
  ],
  // sourceHost and selectedHost (the host asked to be the destination, then the destination: it
  // stays equal to destHost) are a node agent's two Migration watches; destHost is for people and tools.
  selectableFields: ['.status.sourceHost', '.status.destHost', '.status.scheduling.selectedHost'],
  spec: {
    type: 'object',
    title: 'MigrationSpec',
    description: "Which instance moves, to which flavor or host, and the user's decision once it has finished.",
    required: ['instance'],
    'x-kubernetes-validations': [
      {
        rule: 'self.instance == oldSelf.instance',
        message: 'spec.instance is immutable: create a new Migration for another instance',
      },
      {
        rule: "(has(self.flavor) ? self.flavor : '') == (has(oldSelf.flavor) ? oldSelf.flavor : '')",
        message: "spec.flavor is immutable: change the Instance's spec.flavor to request another resize",
      },
      {
        rule: "(has(self.targetHost) ? self.targetHost : '') == (has(oldSelf.targetHost) ? oldSelf.targetHost : '')",
        message: 'spec.targetHost is immutable: create a new Migration to aim at another host',
      },
      {
        rule: "(has(self.type) ? self.type : '') == (has(oldSelf.type) ? oldSelf.type : '')",
        message: 'spec.type is immutable: create a new Migration of the other type',
      },
      {
        rule: "!has(oldSelf.decision) || oldSelf.decision == '' || (has(self.decision) && self.decision == oldSelf.decision)",
        message:
          'spec.decision is final once set: a resize that is being confirmed or reverted cannot be decided again',
      },
    ],
    properties: {
      instance: name('Name of the Instance to move, in this namespace.'),
      flavor: {
        type: 'string',
        maxLength: 253,
        default: '',
        description: 'New flavor for a resize; empty for a cold migration (flavor kept).',
      },
      targetHost: { type: 'string', maxLength: 253, description: 'Forced destination host (still claimed there).' },
      type: {
        type: 'string',
        enum: ['', 'Evacuation'],
        default: '',
        description:
          'Empty for a cold migration or resize. Evacuation rebuilds the instance from its image on another host once its host is forced down (the old disk is lost). Immutable.',
      },
      decision: {
        type: 'string',
        enum: ['', 'Confirm', 'Revert'],
        default: '',
        description:
          'Confirm or Revert a finished resize or migration; empty until decided. Final once set; a decision made earlier takes effect once the migration is finished.',
      },
    },
  },
  status: {
    type: 'object',
    title: 'MigrationStatus',
    description:
      'Progress of the migration, written by the operator and the agents of its two hosts. Conditions Complete and Failed say how it ended.',
    properties: {
      type: {
        type: 'string',
        enum: ['resize', 'migration', 'evacuation'],
        description:
          'resize: to another flavor; migration: a cold migration, flavor kept; evacuation: a rebuild off a forced-down host.',
      },
      status: {
        type: 'string',
        enum: [...MIGRATION_STATUSES],
        description:
          'The phase (Nova migration status). finished waits for spec.decision; confirmed, reverted and error are final.',
      },
      sourceHost: {
        type: 'string',
        maxLength: 253,
        description: 'The host the instance ran on when the migration started.',
      },
      destHost: {
        type: 'string',
        maxLength: 253,
        description: 'The destination, set once its agent holds the claim for the new flavor.',
      },
      oldFlavor: flavorSnapshot('The flavor before the move.'),
      newFlavor: flavorSnapshot('The flavor after the move (same as oldFlavor for a cold migration).'),
      confirmDeadline: time('When the operator confirms automatically (resizeConfirmWindow).'),
      oldVmState: {
        type: 'string',
        enum: ['active', 'stopped'],
        description: "The instance's state before the move; it returns to it after confirm or revert.",
      },
      transfer: {
        type: 'object',
        title: 'TransferStatus',
        description: 'The disk transfer from source to destination.',
        properties: {
          bytes: count('Bytes of the files sent, not counting retried partial uploads.'),
          files: count('Files sent (disk and definition).'),
          attempts: count('Attempts the transfer took, 1 when the first one succeeded.'),
          durationMs: count('How long the transfer took, retries included, in milliseconds.'),
          sha256: { type: 'string', maxLength: 64, description: 'SHA-256 of the disk as sent and as received.' },
          completedAt: time('When the destination verified the last byte.'),
        },
      },
      scheduling: scheduling('Placement attempts for the destination.'),
      fault: fault,
      conditions,
      stepDeadline: time(
        'When the current phase gives up if it has not moved on: the migration then rolls back onto the source (stepTimeout after the phase began; empty while waiting for a decision).',
      ),
      rollback: {
        type: 'object',
        title: 'RollbackRequest',
        description:
          "Why the migration is being rolled back (a step deadline, a cancel, a lost host); the owner of the named phase's step rolls back instead of going on.",
        required: ['phase', 'reason', 'message'],
        properties: {
          phase: { type: 'string', enum: [...MIGRATION_STATUSES], description: 'The phase the request applies to.' },
          reason: {
            type: 'string',
            enum: ['StepFailed', 'StepTimedOut', 'Cancelled', 'HostLost'],
            description:
              'StepFailed: a step failed for good (its retries spent); StepTimedOut: the phase passed stepDeadline; Cancelled: the Migration was deleted; HostLost: a host taking part was forced down.',
          },
          message: { type: 'string', maxLength: 4096, description: 'What happened, for people.' },
          time: time('When it was requested.'),
        },
      },
      startedAt: time('When the migration started.'),
      finishedAt: time('When it reached finished, confirmed, reverted or error.'),
    },
  },
};

// (capacity - reserved) * ratio for one resource, in CEL, as the agent computes allocatable.
const celAllocatable = (cap: string, reserved: string, ratio: string) =>
  `int((double(self.status.capacity.${cap}) - double(self.spec.reserved.${reserved})) * self.spec.allocationRatio.${ratio})`;
const celFits = (cap: string, reserved: string, ratio: string) =>
  `(!has(self.status.capacity.${cap}) || !has(self.status.allocated.${cap}) || ${celAllocatable(cap, reserved, ratio)} >= self.status.allocated.${cap})`;

export const computeNode: KindDefinition = {
  kind: 'ComputeNode',
  plural: 'computenodes',
  singular: 'computenode',
  shortNames: ['cn'],
  scope: 'Cluster',
  description:
    'A ComputeNode is a host that runs instances, registered and kept by its node agent (Nova compute service and node record).',
  printerColumns: [
    { name: 'ZONE', type: 'string', jsonPath: ".metadata.labels['topology\\.kubernetes\\.io/zone']" },
    { name: 'VCPUS', type: 'string', jsonPath: '.status.usage.vcpus', description: 'allocated/allocatable' },
    { name: 'MEMORY', type: 'string', jsonPath: '.status.usage.memory', description: 'allocated/allocatable MiB' },
    { name: 'DISK', type: 'string', jsonPath: '.status.usage.disk', description: 'allocated/allocatable GiB' },
    { name: 'READY', type: 'string', jsonPath: ".status.conditions[?(@.type=='Ready')].status" },
    { name: 'DISABLED', type: 'boolean', jsonPath: '.spec.disabled', priority: 1 },
    { name: 'AGE', type: 'date', jsonPath: '.metadata.creationTimestamp' },
  ],
  rootValidations: [
    {
      // An admin's edit of reserve or ratio must not leave instances already placed here overbooked.
      rule:
        'self.spec == oldSelf.spec || !has(self.status) || !has(self.status.capacity) || !has(self.status.allocated) || ' +
        `(${celFits('vcpus', 'vcpus', 'cpu')} && ${celFits('memoryMiB', 'memoryMiB', 'memory')} && ${celFits('diskGiB', 'diskGiB', 'disk')})`,
      message:
        'this change would make allocatable smaller than what instances on this host already claim (see status.allocated); migrate or delete instances first',
      reason: 'FieldValueForbidden',
    },
  ],
  spec: {
    type: 'object',
    title: 'ComputeNodeSpec',
    description: "The admin's settings for the host: disabled, forced down, overcommit ratios and the reserve.",
    default: {},
    properties: {
      disabled: { type: 'boolean', default: false, description: 'No new instances land here (nova service-disable).' },
      disabledReason: {
        type: 'string',
        maxLength: 1024,
        description: 'Why the host is disabled, for people (nova service-disable --reason).',
      },
      forcedDown: {
        type: 'boolean',
        default: false,
        description:
          'Admin: the host is dead and fenced (Nova forced_down). Its instances may be evacuated, deletes complete without its agent, and its agent cleans up what moved away when it returns.',
      },
      allocationRatio: {
        type: 'object',
        title: 'AllocationRatio',
        default: {},
        description: 'Overcommit ratios: allocatable = (capacity - reserved) * ratio.',
        properties: {
          cpu: ratio(4.0, 'vCPUs allocatable per physical CPU left after the reserve (default 4.0).'),
          memory: ratio(1.0, 'Memory overcommit (default 1.0: none).'),
          disk: ratio(1.0, 'Disk overcommit (default 1.0: none).'),
        },
      },
      reserved: {
        type: 'object',
        title: 'ReservedResources',
        default: {},
        description: 'Kept back for the host itself.',
        properties: {
          vcpus: { ...count('Physical CPUs kept for the host (default 0).'), default: 0 },
          memoryMiB: { ...count('Memory in MiB kept for the host (default 512).'), default: 512 },
          diskGiB: { ...count('Disk in GiB kept for the host (default 0).'), default: 0 },
        },
      },
    },
  },
  status: {
    type: 'object',
    title: 'ComputeNodeStatus',
    description: 'What the node agent reports: capacity, the claims it holds, and heartbeats.',
    properties: {
      capacity: resources('Resources', 'What the driver reports the host has.'),
      allocatable: resources('Resources', '(capacity - reserved) * allocationRatio.'),
      allocated: resources('Resources', 'Sum of the claims.'),
      claims: {
        type: 'array',
        description: 'Resources held on this host, one entry per instance or migration.',
        maxItems: 10000,
        'x-kubernetes-list-type': 'atomic',
        items: {
          type: 'object',
          title: 'Claim',
          required: ['consumer', 'kind', 'vcpus', 'memoryMiB', 'diskGiB'],
          properties: {
            consumer: {
              type: 'string',
              maxLength: 128,
              description: 'UID of the Instance (kind instance) or Migration (kind migration).',
            },
            kind: {
              type: 'string',
              enum: ['instance', 'migration'],
              description:
                "instance: the instance's own claim where it runs; migration: a migration's claim for the new flavor on its destination, until confirm or revert.",
            },
            instance: { type: 'string', maxLength: 512, description: 'namespace/name of the Instance, for people.' },
            vcpus: count('Virtual CPUs held.'),
            memoryMiB: count('Memory in MiB held.'),
            diskGiB: count('Disk in GiB held (root and ephemeral).'),
            createdAt: time('When the claim was made.'),
          },
        },
      },
      usage: {
        type: 'object',
        title: 'UsageSummary',
        description: 'allocated/allocatable per resource, for kubectl get.',
        properties: {
          vcpus: { type: 'string', maxLength: 64, description: 'allocated/allocatable virtual CPUs.' },
          memory: { type: 'string', maxLength: 64, description: 'allocated/allocatable memory in MiB.' },
          disk: { type: 'string', maxLength: 64, description: 'allocated/allocatable disk in GiB.' },
        },
      },
      heartbeatTime: time('Last heartbeat from the node agent.'),
      driver: { type: 'string', maxLength: 64, description: 'Virt driver in use: fake or libvirt.' },
      migrationEndpoint: {
        type: 'string',
        maxLength: 512,
        description: 'host:port where the agent receives instance directories.',
      },
      conditions,
    },
  },
};

const quotaAmounts = (title: string, description: string): JSONSchema => ({
  type: 'object',
  title,
  description,
  properties: {
    instances: count('Instances.'),
    vcpus: count('Virtual CPUs.'),
    memoryMiB: count('Memory in MiB.'),
    diskGiB: count('Disk in GiB (root and ephemeral).'),
    ports: count('Ports, one per network interface (each holds one fixed IP).'),
  },
});

export const computeQuota: KindDefinition = {
  kind: 'ComputeQuota',
  plural: 'computequotas',
  singular: 'computequota',
  shortNames: ['cq'],
  scope: 'Namespaced',
  description:
    'A ComputeQuota caps what the Instances of its namespace may hold (Nova quotas). Boots reserve before scheduling; resizes reserve only the increase. Omitted limits are unlimited.',
  printerColumns: [
    { name: 'INSTANCES', type: 'string', jsonPath: '.status.summary.instances', description: 'used/hard' },
    { name: 'VCPUS', type: 'string', jsonPath: '.status.summary.vcpus', description: 'used/hard' },
    { name: 'MEMORY', type: 'string', jsonPath: '.status.summary.memory', description: 'used/hard MiB' },
    { name: 'DISK', type: 'string', jsonPath: '.status.summary.disk', description: 'used/hard GiB' },
    { name: 'PORTS', type: 'string', jsonPath: '.status.summary.ports', description: 'used/hard', priority: 1 },
    { name: 'AGE', type: 'date', jsonPath: '.metadata.creationTimestamp' },
  ],
  spec: {
    type: 'object',
    title: 'ComputeQuotaSpec',
    description: 'The limits of the namespace.',
    properties: { hard: quotaAmounts('QuotaAmounts', 'Limits; an omitted key is unlimited.') },
  },
  status: {
    type: 'object',
    title: 'ComputeQuotaStatus',
    description: 'Usage and reservations against the limits, kept by the operator.',
    properties: {
      used: quotaAmounts('QuotaAmounts', 'Committed usage: running instances and finished resizes.'),
      reserved: quotaAmounts('QuotaAmounts', 'Held for boots and resizes in progress.'),
      allocations: {
        type: 'array',
        description: 'Per-consumer accounting that used and reserved are summed from (one writer: the operator).',
        maxItems: 10000,
        'x-kubernetes-list-type': 'atomic',
        items: {
          type: 'object',
          title: 'QuotaAllocation',
          required: ['consumer', 'instance', 'state'],
          properties: {
            consumer: {
              type: 'string',
              maxLength: 128,
              description: 'Instance UID (its boot) or Migration UID (a resize increase).',
            },
            instance: { type: 'string', maxLength: 253, description: 'Name of the Instance, for people.' },
            state: {
              type: 'string',
              enum: ['reserved', 'used'],
              description: 'reserved: held for a boot or resize in progress; used: committed.',
            },
            instances: count('Instances counted: 1 for a boot, 0 for a resize.'),
            vcpus: count('Virtual CPUs counted.'),
            memoryMiB: count('Memory in MiB counted.'),
            diskGiB: count('Disk in GiB counted (root and ephemeral).'),
            ports: count('Ports counted: one per network the instance attaches, 0 for a resize.'),
          },
        },
      },
      summary: {
        type: 'object',
        title: 'QuotaSummary',
        description: 'used/hard per resource (∞ when unlimited), for kubectl get.',
        properties: {
          instances: { type: 'string', maxLength: 64, description: 'used/hard instances.' },
          vcpus: { type: 'string', maxLength: 64, description: 'used/hard virtual CPUs.' },
          memory: { type: 'string', maxLength: 64, description: 'used/hard memory in MiB.' },
          disk: { type: 'string', maxLength: 64, description: 'used/hard disk in GiB.' },
          ports: { type: 'string', maxLength: 64, description: 'used/hard ports.' },
        },
      },
    },
  },
};

export const serverGroup: KindDefinition = {
  kind: 'ServerGroup',
  plural: 'servergroups',
  singular: 'servergroup',
  shortNames: ['sg'],
  scope: 'Namespaced',
  description:
    'A ServerGroup places its member Instances together (affinity) or apart (anti-affinity), strictly or as a preference (soft-).',
  printerColumns: [
    { name: 'POLICY', type: 'string', jsonPath: '.spec.policy' },
    { name: 'MEMBERS', type: 'string', jsonPath: '.status.members' },
    { name: 'HOSTS', type: 'string', jsonPath: '.status.hosts' },
    { name: 'AGE', type: 'date', jsonPath: '.metadata.creationTimestamp' },
  ],
  spec: {
    type: 'object',
    title: 'ServerGroupSpec',
    description: 'The placement policy of the group. Immutable.',
    required: ['policy'],
    'x-kubernetes-validations': [
      { rule: 'self.policy == oldSelf.policy', message: 'spec.policy is immutable: create a new ServerGroup' },
    ],
    properties: {
      policy: {
        type: 'string',
        enum: ['affinity', 'anti-affinity', 'soft-affinity', 'soft-anti-affinity'],
        description:
          'affinity: all members on one host; anti-affinity: each on its own host; soft-: a preference, not a rule.',
      },
    },
  },
  status: {
    type: 'object',
    title: 'ServerGroupStatus',
    description: "The group's members and the hosts they run on, kept by the operator.",
    properties: {
      members: {
        type: 'array',
        description: 'Names of the Instances in the group, sorted.',
        maxItems: 1000,
        'x-kubernetes-list-type': 'atomic',
        items: { type: 'string', maxLength: 253 },
      },
      hosts: {
        type: 'array',
        description: 'Hosts the members run on, sorted.',
        maxItems: 1000,
        'x-kubernetes-list-type': 'atomic',
        items: { type: 'string', maxLength: 253 },
      },
    },
  },
};

const ipv4 = (description: string): JSONSchema => ({
  type: 'string',
  description,
  maxLength: 15,
  'x-kubernetes-validations': [
    { rule: 'isIP(self) && ip(self).family() == 4', message: 'must be an IPv4 address such as 10.251.0.1' },
  ],
});

// The API server checks what it can: an IPv4 network address with a prefix, a gateway and a
// range inside it. What needs other objects (overlap with another Network) or IP ordering
// (range start after end) the network controller judges, marking the Network Invalid.
const CIDR_RULES = [
  {
    rule: 'isCIDR(self) && cidr(self).ip().family() == 4',
    message: 'must be an IPv4 CIDR such as 10.251.0.0/24',
  },
  {
    rule: '!isCIDR(self) || string(cidr(self).masked()) == self',
    message: 'must be the network address with its prefix (10.251.0.0/24, not 10.251.0.5/24)',
  },
  {
    rule: '!isCIDR(self) || (cidr(self).prefixLength() >= 8 && cidr(self).prefixLength() <= 29)',
    message: 'the prefix length must be between /8 and /29 (a /29 leaves 5 addresses for ports)',
  },
];

export const network: KindDefinition = {
  kind: 'Network',
  plural: 'networks',
  singular: 'network',
  shortNames: ['net'],
  scope: 'Cluster',
  description:
    'A Network is an IPv4 subnet instances attach to (Neutron network and subnet): the operator gives each attached instance a Port with a fixed IP from it. Admins create Networks; spec.default marks the one instances without spec.networks get.',
  printerColumns: [
    { name: 'CIDR', type: 'string', jsonPath: '.spec.cidr' },
    { name: 'GATEWAY', type: 'string', jsonPath: '.spec.gateway' },
    { name: 'DEFAULT', type: 'boolean', jsonPath: '.spec.default' },
    { name: 'PORTS', type: 'integer', jsonPath: '.status.allocated', description: 'Addresses held by ports' },
    { name: 'FREE', type: 'integer', jsonPath: '.status.free', description: 'Addresses left in the range' },
    {
      name: 'READY',
      type: 'string',
      jsonPath: ".status.conditions[?(@.type=='Ready')].status",
      description: 'False while the Network is invalid (see the Ready condition)',
    },
    { name: 'MTU', type: 'integer', jsonPath: '.spec.mtu', priority: 1 },
    { name: 'AGE', type: 'date', jsonPath: '.metadata.creationTimestamp' },
  ],
  rootValidations: [
    {
      // Addresses are locked by IPAllocation objects named <network>.<ip>, which must stay a valid name.
      rule: 'size(self.metadata.name) <= 63',
      message: 'a Network name is at most 63 characters',
    },
  ],
  spec: {
    type: 'object',
    title: 'NetworkSpec',
    description: 'The subnet, its gateway and the part of it the operator hands out.',
    required: ['cidr', 'gateway'],
    'x-kubernetes-validations': [
      {
        rule: 'self.cidr == oldSelf.cidr && self.gateway == oldSelf.gateway',
        message:
          'spec.cidr and spec.gateway are immutable: ports hold addresses in them; create a new Network and move instances to it',
      },
      {
        rule: '!isCIDR(self.cidr) || !isIP(self.gateway) || cidr(self.cidr).containsIP(self.gateway)',
        messageExpression: "'spec.gateway ' + self.gateway + ' is outside spec.cidr ' + self.cidr",
      },
      {
        rule: '!has(self.allocationRange) || !isCIDR(self.cidr) || !isIP(self.allocationRange.start) || !isIP(self.allocationRange.end) || (cidr(self.cidr).containsIP(self.allocationRange.start) && cidr(self.cidr).containsIP(self.allocationRange.end))',
        messageExpression:
          "'spec.allocationRange ' + self.allocationRange.start + '-' + self.allocationRange.end + ' must lie inside spec.cidr ' + self.cidr",
      },
    ],
    properties: {
      cidr: {
        type: 'string',
        maxLength: 18,
        description: 'The IPv4 subnet, e.g. 10.251.0.0/24 (network address, prefix /8 to /29). Immutable.',
        'x-kubernetes-validations': CIDR_RULES,
      },
      gateway: ipv4('The gateway address inside cidr; never given to a port. Immutable.'),
      allocationRange: {
        type: 'object',
        title: 'AllocationRange',
        description:
          'The addresses ports get (Neutron allocation pool), both ends included; default: the whole cidr but its network, broadcast and gateway addresses.',
        required: ['start', 'end'],
        properties: {
          start: ipv4('First address handed out.'),
          end: ipv4('Last address handed out, not before start.'),
        },
      },
      mtu: {
        type: 'integer',
        minimum: 576,
        maximum: 9000,
        default: 1500,
        description: 'MTU of the interfaces on this network (default 1500).',
      },
      default: {
        type: 'boolean',
        default: false,
        description:
          'The default network: instances created without spec.networks attach to it. At most one Network should be default; if several are, the oldest wins.',
      },
    },
  },
  status: {
    type: 'object',
    title: 'NetworkStatus',
    description: 'Whether the Network can hand out addresses, and how many it has, kept by the operator.',
    properties: {
      conditions: {
        ...conditions,
        description:
          'Ready: True when ports may be made on the Network; False with reason OverlappingCIDR (naming the other Network) or InvalidAllocationRange.',
      },
      size: count('Addresses the range holds for ports.'),
      allocated: count('Addresses held by ports.'),
      free: count('Addresses left for new ports.'),
      lastAllocated: {
        type: 'string',
        maxLength: 15,
        description:
          'The address handed out last: the next one is searched for after it, so a released address is not reused at once, across operator restarts too.',
      },
      observedGeneration: count('The .metadata.generation the status was computed from.'),
    },
  },
};

export const PORT_BINDING_STATES = ['unbound', 'bound', 'migrating'] as const;

export const port: KindDefinition = {
  kind: 'Port',
  plural: 'ports',
  singular: 'port',
  shortNames: ['pt'],
  scope: 'Namespaced',
  description:
    'A Port is one network interface of an Instance (Neutron port): a MAC and a fixed IP on a Network, and the host it is bound to. The operator makes one per attached network at boot, moves the binding with the instance and deletes it with the instance; the MAC and IP never change.',
  printerColumns: [
    { name: 'NETWORK', type: 'string', jsonPath: '.spec.network' },
    { name: 'INSTANCE', type: 'string', jsonPath: '.spec.instance' },
    { name: 'IP', type: 'string', jsonPath: '.spec.fixedIP' },
    { name: 'MAC', type: 'string', jsonPath: '.spec.macAddress' },
    { name: 'HOST', type: 'string', jsonPath: '.status.bindingHost' },
    { name: 'BINDING', type: 'string', jsonPath: '.status.bindingState' },
    { name: 'AGE', type: 'date', jsonPath: '.metadata.creationTimestamp' },
  ],
  spec: {
    type: 'object',
    title: 'PortSpec',
    description: 'The interface: which network and instance, its MAC and its fixed IP. Immutable.',
    required: ['network', 'instance', 'macAddress', 'fixedIP'],
    'x-kubernetes-validations': [
      { rule: 'self == oldSelf', message: 'Port spec is immutable: the MAC and IP stay with the port for its life' },
    ],
    properties: {
      network: name('Name of the Network the port is on.'),
      instance: name('Name of the Instance (in this namespace) the port belongs to.'),
      macAddress: {
        type: 'string',
        pattern: '^([0-9a-f]{2}:){5}[0-9a-f]{2}$',
        maxLength: 17,
        description: 'MAC address, lower case, in the locally administered fa:16:3e prefix Neutron uses.',
      },
      fixedIP: ipv4('The IPv4 address on the network, held by an IPAllocation of the same network and address.'),
    },
  },
  status: {
    type: 'object',
    title: 'PortStatus',
    description:
      'Where the port is bound (Neutron binding:host_id), kept by the operator as the instance moves; the node agent of bindingHost plugs it.',
    properties: {
      bindingHost: {
        type: 'string',
        maxLength: 253,
        description: 'The host whose data plane carries the port: the host the guest runs on. Empty while unbound.',
      },
      bindingState: {
        type: 'string',
        enum: [...PORT_BINDING_STATES],
        description:
          'unbound: no host yet; bound: plugged on bindingHost; migrating: still bound to bindingHost while migratingTo prepares to take it over (resize or migration before finished).',
      },
      migratingTo: {
        type: 'string',
        maxLength: 253,
        description:
          "The destination of a move in progress (Neutron's binding profile migrating_to): its agent plugs the port before the guest starts there. Empty when no move is in progress.",
      },
    },
  },
};

export const ipAllocation: KindDefinition = {
  kind: 'IPAllocation',
  plural: 'ipallocations',
  singular: 'ipallocation',
  shortNames: ['ipa'],
  scope: 'Cluster',
  description:
    "An IPAllocation holds one address of a Network for one Port (Neutron's ipallocations row). It is named <network>.<ip>, so the API server itself refuses a second holder of an address. Made and deleted by the operator.",
  printerColumns: [
    { name: 'NETWORK', type: 'string', jsonPath: '.spec.network' },
    { name: 'IP', type: 'string', jsonPath: '.spec.ip' },
    { name: 'NAMESPACE', type: 'string', jsonPath: '.spec.port.namespace' },
    { name: 'PORT', type: 'string', jsonPath: '.spec.port.name' },
    { name: 'AGE', type: 'date', jsonPath: '.metadata.creationTimestamp' },
  ],
  rootValidations: [
    {
      rule: "self.metadata.name == self.spec.network + '.' + self.spec.ip",
      message: 'an IPAllocation is named <network>.<ip>: the name is what makes an address held once',
    },
  ],
  spec: {
    type: 'object',
    title: 'IPAllocationSpec',
    description: 'The address and the port that holds it. Immutable.',
    required: ['network', 'ip', 'port'],
    'x-kubernetes-validations': [{ rule: 'self == oldSelf', message: 'IPAllocation spec is immutable' }],
    properties: {
      network: name('Name of the Network.'),
      ip: ipv4('The address held.'),
      port: {
        type: 'object',
        title: 'PortRef',
        description: 'The Port that holds the address (it may not exist yet: the address is held first).',
        required: ['namespace', 'name'],
        properties: {
          namespace: { type: 'string', maxLength: 63, description: 'Namespace of the Port.' },
          name: { type: 'string', maxLength: 253, description: 'Name of the Port.' },
          instanceUID: {
            type: 'string',
            maxLength: 128,
            description:
              'UID of the Instance the Port is made for: once that instance is gone, the address is released.',
          },
        },
      },
    },
  },
  status: {
    type: 'object',
    title: 'IPAllocationStatus',
    description: 'Unused: an IPAllocation is a lock and has no observed state.',
    properties: {},
  },
};

export const KINDS = [
  flavor,
  instance,
  migration,
  computeNode,
  computeQuota,
  serverGroup,
  network,
  port,
  ipAllocation,
] as const;
