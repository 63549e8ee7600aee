// The one interface the agent drives a hypervisor through (Nova's virt/driver.py, KubeVirt's
// virtwrap), so the tracker and the agent's reconcilers do not know whether domains are
// fake directories or libvirt guests.
import type { FlavorSnapshot, PowerState, ResourceAmounts } from '../../common/api/types.js';

export interface DomainSpec {
  /** The Instance UID; it names the domain and its directory, so it is stable across renames and moves. */
  uid: string;
  /** namespace/name of the Instance, for people. */
  name: string;
  flavor: FlavorSnapshot;
  image: string;
}

export interface DomainInfo {
  uid: string;
  name: string;
  flavor: FlavorSnapshot;
  image: string;
  powerState: PowerState;
  /** Size of the disk file as it is on this host (for the fake driver, the scaled-down model). */
  diskBytes: number;
}

export interface GuestInfo {
  vcpus: number;
  memoryKiB: number;
  diskBytes: number;
  marker: string;
}

export interface VirtDriver {
  readonly kind: 'fake' | 'libvirt';
  capacity(): Promise<ResourceAmounts>;
  /** Idempotent: an existing domain with that uid is started if stopped and returned as is. */
  spawn(spec: DomainSpec): Promise<DomainInfo>;
  /** Idempotent. */
  powerOff(uid: string): Promise<DomainInfo>;
  /** Idempotent. */
  powerOn(uid: string): Promise<DomainInfo>;
  /** Idempotent: removes the domain and all its files, including `<uid>_resize`. */
  destroy(uid: string): Promise<void>;
  get(uid: string): Promise<DomainInfo | undefined>;
  list(): Promise<DomainInfo[]>;
  /** What the guest itself reports; undefined when it is not running (a stopped guest says nothing). */
  guestReport(uid: string): Promise<GuestInfo | undefined>;
  /** The directory holding disk and definition; a migration transfers it whole. */
  instanceDir(uid: string): string;
}

export class DriverError extends Error {
  constructor(
    readonly operation: string,
    readonly uid: string,
    message: string,
  ) {
    super(`${operation} ${uid}: ${message}`);
    this.name = 'DriverError';
  }
}
