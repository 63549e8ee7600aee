// A Migration the operator makes for an instance (a resize request, an automatic evacuation):
// owned by the Instance, labelled with its name, and held by the cancel finalizer from birth,
// so a delete at any moment is a cancel the operator carries out.
import { API_VERSION, MIGRATION_FINALIZER, type Instance, type Migration } from '../../common/api/types.js';

/** The Migration a change of spec.flavor asks for: one per generation of the spec. */
export const resizeMigrationName = (inst: Instance): string =>
  `${inst.metadata.name}-resize-${inst.metadata.generation ?? 1}`;

/**
 * Whether `mig` is the Migration the instance's current spec.flavor asked for: its start, or its
 * end without one, records that generation of the spec as acted on.
 */
export const isRequestedResize = (mig: Migration, inst: Instance): boolean =>
  Boolean(mig.spec.flavor) && mig.metadata.name === resizeMigrationName(inst);

export function ownedMigration(inst: Instance, name: string, spec: Omit<Migration['spec'], 'instance'>): Migration {
  return {
    apiVersion: API_VERSION,
    kind: 'Migration',
    metadata: {
      name,
      namespace: inst.metadata.namespace,
      labels: { 'compute.kubenova.io/instance': inst.metadata.name },
      finalizers: [MIGRATION_FINALIZER],
      ownerReferences: [
        {
          apiVersion: API_VERSION,
          kind: 'Instance',
          name: inst.metadata.name,
          uid: inst.metadata.uid ?? '',
          controller: true,
          blockOwnerDeletion: true,
        },
      ],
    },
    spec: { instance: inst.metadata.name, ...spec },
  };
}
