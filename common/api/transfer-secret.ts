// The one-time token for a Migration's disk transfer lives in a Secret the operator
// creates (owned by the Migration) and deletes once the disk has arrived.
export const transferSecretName = (migration: string): string => `${migration}-transfer`;
export const MIGRATION_UID_ANNOTATION = 'compute.kubenova.io/migration-uid';
